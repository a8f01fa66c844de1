package graph

import (
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
)

// Cloud is a national cloud: where its Graph lives and where its apps sign in. Tokens do not
// cross clouds.
type Cloud struct {
	Name      string
	GraphRoot string              // https://graph.microsoft.com
	SignIn    cloud.Configuration // sign-in authority for azidentity
}

// BaseURL is the cloud's Graph beta endpoint, the only one that has userRunStates.
func (c Cloud) BaseURL() string { return c.GraphRoot + "/beta" }

// Scope is the client-credentials scope for the cloud's Graph: not part of azcore's cloud
// configuration, so it is kept here.
func (c Cloud) Scope() string { return c.GraphRoot + "/.default" }

// Clouds are the national clouds hwstate knows, by HWSTATE_GRAPH_CLOUD name.
func Clouds() []Cloud {
	usgov := cloud.AzureGovernment // login.microsoftonline.us serves both L4 and L5
	return []Cloud{
		{Name: "global", GraphRoot: "https://graph.microsoft.com", SignIn: cloud.AzurePublic},
		{Name: "usgov", GraphRoot: "https://graph.microsoft.us", SignIn: usgov},
		{Name: "usgovdod", GraphRoot: "https://dod-graph.microsoft.us", SignIn: usgov},
		{Name: "china", GraphRoot: "https://microsoftgraph.chinacloudapi.cn", SignIn: cloud.AzureChina},
	}
}

// CloudByName finds a cloud by its HWSTATE_GRAPH_CLOUD name.
func CloudByName(name string) (Cloud, error) {
	var names []string
	for _, c := range Clouds() {
		if strings.EqualFold(c.Name, name) {
			return c, nil
		}
		names = append(names, c.Name)
	}
	return Cloud{}, fmt.Errorf("unknown Graph cloud %q: want one of %s", name, strings.Join(names, ", "))
}
