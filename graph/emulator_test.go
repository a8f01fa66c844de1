package graph

import (
	"net/http/httptest"
	"testing"

	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/graphtest"
)

const (
	testConfigID = graphtest.ConfigID
	testToken    = "s3cr3t-t0ken"
)

var testState = graphtest.UserState()

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
