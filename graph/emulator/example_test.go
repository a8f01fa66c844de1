package emulator_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/hwstate/hwstate/graph/emulator"
)

func Example() {
	e := emulator.New(emulator.Config{ThrottleFirst: 1, RetryAfter: 2 * time.Second})
	srv := httptest.NewServer(e)
	defer srv.Close()

	const crid = "5d1c1d7e-8d3c-4b51-9e3a-0d6b4c1f2a77"
	url := srv.URL + "/beta/deviceManagement/hardwareConfigurations/0f3c9a1e-5b2d-4c7e-9a10-2f6d8b4e1c33/userRunStates"
	body := `{"@odata.type":"#microsoft.graph.hardwareConfigurationUserState","upn":"ada@contoso.com",` +
		`"userEmail":"ada@contoso.com","userName":"Ada Lovelace","lastStateUpdateDateTime":"2017-01-01T00:02:58Z",` +
		`"successfulDeviceCount":5,"failedDeviceCount":1,"pendingDeviceCount":2,"errorDeviceCount":0,"notApplicableDeviceCount":8,"unknownDeviceCount":2}`
	for range 2 {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer any")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("client-request-id", crid)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		fmt.Printf("%d Retry-After %q\n", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	fmt.Println(e.CreatesFor(crid))
	// Output:
	// 429 Retry-After "2"
	// 201 Retry-After ""
	// 1
}
