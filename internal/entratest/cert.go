package entratest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// Certificate is an app registration's certificate credential, as openssl writes it out of
// a .pfx (`openssl pkcs12 -nodes`): the unencrypted private key, then the certificate, each
// behind a "Bag Attributes" preamble, so that the text does not begin with -----BEGIN. key
// is the private key's PEM block alone, for tests that look for it where it must not be.
func Certificate(t testing.TB) (text, key string) {
	t.Helper()
	priv, der := SelfSigned(t)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	key = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}))
	text = "Bag Attributes\n    localKeyID: 01 00 00 00 \n    friendlyName: hwstate\nKey Attributes: <No Attributes>\n" + key +
		"Bag Attributes\n    localKeyID: 01 00 00 00 \nsubject=CN = hwstate test\nissuer=CN = hwstate test\n" +
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return text, key
}

// SelfSigned is an RSA key and a certificate for it (DER), signed by itself and valid from
// an hour ago to an hour from now, for a test to write out in the form it needs.
func SelfSigned(t testing.TB) (*rsa.PrivateKey, []byte) {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hwstate test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	return priv, der
}
