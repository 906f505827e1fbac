package main

import (
	"net/http"
	"testing"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/examples/internal/e2e"
)

// e2eExample is this example, as the end-to-end tests run it.
var e2eExample = e2e.Example{
	Run:        run,
	NewHandler: newHandler,
	SDKHandler: func(v *introspection.Verifier) http.Handler {
		return newMCPHandler(newMCPServer(v), "http://127.0.0.1")
	},
}

func TestEndToEnd(t *testing.T)             { e2e.RunWithTestServer(t, e2eExample) }
func TestEndToEndOIDCProvider(t *testing.T) { e2e.RunWithOIDCProvider(t, e2eExample) }
func TestDemo(t *testing.T)                 { e2e.Demo(t, e2eExample) }
func TestAudienceDefaultsToResourceURL(t *testing.T) {
	e2e.AudienceDefaultsToResourceURL(t, e2eExample)
}
func TestPerToolScopes(t *testing.T) { e2e.PerToolScopes(t, e2eExample) }
func TestToolsListShowsOnlyCallableTools(t *testing.T) {
	e2e.ToolsListShowsOnlyCallableTools(t, e2eExample)
}
func TestMachineClient(t *testing.T)                { e2e.MachineClient(t, e2eExample) }
func TestSessionsServeOnlyTheirCaller(t *testing.T) { e2e.SessionsServeOnlyTheirCaller(t, e2eExample) }
func TestSameAnswersAsTheSDK(t *testing.T)          { e2e.SameAnswersAsTheSDK(t, e2eExample) }
func TestMetadata(t *testing.T)                     { e2e.Metadata(t, e2eExample) }
func TestDiscoveryFromIssuer(t *testing.T)          { e2e.DiscoveryFromIssuer(t, e2eExample) }
func TestDPoP(t *testing.T)                         { e2e.DPoP(t, e2eExample) }
func TestDPoPProofNamesThePublicURL(t *testing.T)   { e2e.DPoPProofNamesThePublicURL(t, e2eExample) }
func TestDPoPWithOIDCProvider(t *testing.T)         { e2e.DPoPWithOIDCProvider(t, e2eExample) }
func TestStartupRefusals(t *testing.T)              { e2e.StartupRefusals(t, e2eExample) }
func TestShutdownClosesTheVerifier(t *testing.T)    { e2e.ShutdownClosesTheVerifier(t, e2eExample) }
func TestIntrospectionsPerSession(t *testing.T) {
	e2e.IntrospectionsPerSession(t, e2eExample, e2e.SessionRequests{Latest: 3, Legacy: 6})
}
