package graph_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"github.com/hwstate/hwstate/graph"
	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/schema"
)

// A create whose answer is lost (here a 504 after Graph created the entity) is ambiguous:
// before sending it again, the caller lists the user's states and looks for one equal to
// what it would create (CONTRACT section 3). Found, the event is created, with that id.
func ExampleAmbiguous() {
	e := emulator.New(emulator.Config{AmbiguousRate: 1, AmbiguousFaults: []string{emulator.Fault504}})
	srv := httptest.NewServer(e)
	defer srv.Close()
	c := &graph.Client{BaseURL: srv.URL + "/beta", Tokens: graph.StaticToken("token")}
	ctx := context.Background()

	const configID = "0f3c9a1e-5b2d-4c7e-9a10-2f6d8b4e1c33"
	u := schema.UserState{
		UPN: "ada@contoso.com", UserEmail: "ada@contoso.com", UserName: "Ada Lovelace",
		LastStateUpdateDateTime: "2017-01-01T00:02:58.4418045-08:00", SuccessfulDeviceCount: 5,
	}
	resp, err := c.Create(ctx, graph.Request{
		ConfigurationID: configID, ClientRequestID: graph.ClientRequestID("EVENTS-1"), Body: u.AppendGraphBody(nil),
	})
	fmt.Println(resp.Status, graph.Ambiguous(resp, err))

	states, resp, err := c.ListUserStates(ctx, graph.ListRequest{ConfigurationID: configID, UPN: u.UPN})
	if err != nil || resp.Class != graph.Listed {
		fmt.Println("list:", resp.Status, err) // retry, or create anyway when ErrListUnavailable
		return
	}
	for _, s := range states {
		if s.Matches(&u) {
			fmt.Println("found: created, not sent again")
		}
	}
	fmt.Println("creates:", e.Stats().Creates)
	// Output:
	// 504 true
	// found: created, not sent again
	// creates: 1
}
