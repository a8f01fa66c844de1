package graph

import (
	"net/http/httptest"
	"testing"

	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/schema"
)

const (
	testConfigID = "0f3c9a1e-5b2d-4c7e-9a10-2f6d8b4e1c33"
	testToken    = "s3cr3t-t0ken"
)

var testState = schema.UserState{
	UPN: "ada@contoso.com", UserEmail: "ada@contoso.com", UserName: "Ada Lovelace",
	LastStateUpdateDateTime: "2017-01-01T00:02:58.4418045-08:00",
	SuccessfulDeviceCount:   5, FailedDeviceCount: 1, PendingDeviceCount: 2,
	NotApplicableDeviceCount: 8, UnknownDeviceCount: 2,
}

func testBody() []byte { return testState.AppendGraphBody(nil) }

func createPath(configID string) string {
	return "/beta/deviceManagement/hardwareConfigurations/" + configID + "/userRunStates"
}

// newEmulatorServer serves the Graph emulator on loopback until the test ends.
func newEmulatorServer(t testing.TB, cfg emulator.Config) (*emulator.Emulator, *httptest.Server) {
	t.Helper()
	e := emulator.New(cfg)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return e, srv
}
