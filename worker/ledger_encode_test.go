package worker

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// TestRecordEncodeIsJSONMarshal holds the hand-written ledger encoding to what json.Marshal
// writes, so records stay readable by every version of the worker.
func TestRecordEncodeIsJSONMarshal(t *testing.T) {
	created := time.Date(2026, 11, 28, 21, 30, 1, 123456789, time.FixedZone("x", 3600))
	body, err := json.Marshal(Result{EventID: `ev "1" <&> é`, Created: json.RawMessage(`{"id":"a"}`)})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []record{
		{Outcome: Created, Body: body},
		{Outcome: InvalidEvent, Body: body, StreamCreated: &created},
	} {
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.encode(); !bytes.Equal(got, want) {
			t.Errorf("encode:\n%s\nwant json.Marshal's\n%s", got, want)
		}
		var back record
		if err := json.Unmarshal(r.encode(), &back); err != nil || back.Outcome != r.Outcome {
			t.Errorf("decoding the encoded record: %v, outcome %q", err, back.Outcome)
		}
	}
}

func BenchmarkRecordEncode(b *testing.B) {
	body, _ := json.Marshal(Result{EventID: "ev-1", Created: json.RawMessage(`{"@odata.type":"#microsoft.graph.hardwareConfigurationUserState","id":"3f1c","upn":"ada@contoso.com","userEmail":"ada@contoso.com","userName":"Ada Lovelace","lastStateUpdateDateTime":"2017-01-01T00:02:58.4418045-08:00","successfulDeviceCount":5,"failedDeviceCount":1,"pendingDeviceCount":2,"errorDeviceCount":0,"notApplicableDeviceCount":8,"unknownDeviceCount":2}`)})
	r := record{Outcome: Created, Body: body}
	b.ReportAllocs()
	for b.Loop() {
		_ = r.encode()
	}
}
