package introspection

import (
	"context"
	"testing"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// audienceCases are pairs of a configured audience and a token's aud, with
// whether they name the same resource.
var audienceCases = []struct {
	name       string
	want, aud  string
	sameTarget bool
}{
	{"equal", "https://mcp.example.com/mcp", "https://mcp.example.com/mcp", true},
	{"uppercase scheme and host in the token", "https://mcp.example.com/mcp", "HTTPS://MCP.Example.COM/mcp", true},
	{"uppercase scheme and host in the settings", "HTTPS://MCP.EXAMPLE.COM/mcp", "https://mcp.example.com/mcp", true},
	{"default https port in the token", "https://mcp.example.com/mcp", "https://mcp.example.com:443/mcp", true},
	{"default https port in the settings", "https://mcp.example.com:443/mcp", "https://mcp.example.com/mcp", true},
	{"default http port", "http://127.0.0.1/mcp", "HTTP://127.0.0.1:80/mcp", true},
	{"empty port", "https://mcp.example.com:/mcp", "https://mcp.example.com/mcp", true},
	{"empty path is /", "https://mcp.example.com", "https://mcp.example.com/", true},
	{"empty path before a query", "https://mcp.example.com?t=1", "https://mcp.example.com/?t=1", true},
	{"IPv6 host", "https://[::1]/mcp", "https://[::1]:443/mcp", true},
	{"IPv6 host case", "https://[fe80::a]/mcp", "https://[FE80::A]/mcp", true},
	{"non-URL audience, equal", "my-api", "my-api", true},
	{"upper-case scheme and host in a custom scheme", "api://Res.Example/x", "API://res.example/x", true},
	{"scheme that begins with z", "z39.50r://Host.example/x", "Z39.50R://host.example/x", true},
	{"host letters at the ends of the alphabet", "https://az.example/mcp", "https://AZ.EXAMPLE/mcp", true},

	{"path case differs", "https://mcp.example.com/mcp", "https://mcp.example.com/MCP", false},
	{"another host", "https://mcp.example.com/mcp", "https://evil.example.com/mcp", false},
	{"another host of the same length", "https://mcp.example.com/mcp", "https://mcq.example.com/mcp", false},
	{"another scheme of the same length", "api://res.example/x", "apx://res.example/x", false},
	{"host suffix", "https://mcp.example.com/mcp", "https://mcp.example.com.evil/mcp", false},
	{"another port", "https://mcp.example.com/mcp", "https://mcp.example.com:8443/mcp", false},
	{"another scheme", "https://mcp.example.com/mcp", "http://mcp.example.com/mcp", false},
	{"https default port on http", "http://mcp.example.com/mcp", "http://mcp.example.com:443/mcp", false},
	{"http default port on https", "https://mcp.example.com/mcp", "https://mcp.example.com:80/mcp", false},
	{"port with a leading zero", "https://mcp.example.com/mcp", "https://mcp.example.com:0443/mcp", false},
	{"trailing slash", "https://mcp.example.com/mcp", "https://mcp.example.com/mcp/", false},
	{"prefix of the path", "https://mcp.example.com/mcp", "https://mcp.example.com/mcpx", false},
	{"escaped path", "https://mcp.example.com/mcp", "https://mcp.example.com/%6Dcp", false},
	{"query case differs", "https://mcp.example.com/mcp?a=1", "https://mcp.example.com/mcp?A=1", false},
	{"userinfo", "https://mcp.example.com/mcp", "https://mcp@mcp.example.com/mcp", false},
	{"userinfo in both", "https://u@mcp.example.com/mcp", "https://U@MCP.example.com/mcp", false},
	{"escaped host", "https://mcp.example.com/mcp", "https://mcp.example%2Ecom/mcp", false},
	{"Kelvin sign folds to k only in Unicode", "https://key.example/mcp", "https://\u212aey.example/mcp", false},
	{"fragment", "https://mcp.example.com/mcp", "HTTPS://mcp.example.com/mcp#x", false},
	{"empty path is not / in another scheme", "api://res.example", "api://res.example/", false},
	{"443 is not a default port in another scheme", "api://res.example/x", "api://res.example:443/x", false},
	{"non-URL audience, case differs", "my-api", "MY-API", false},
	{"scheme only", "https:", "HTTPS:", false},
	{"no host", "https:///mcp", "HTTPS:///mcp", false},
	{"empty", "https://mcp.example.com/mcp", "", false},
	{"scheme that begins with a digit", "1a://host.example/x", "1A://HOST.example/x", false},
}

// TestAudienceURLComparison checks that Verify compares URL audiences as
// the MCP authorization spec asks: scheme and host case-insensitively, an
// explicit default port as none; the path, query and anything that is not
// such a URL exactly.
func TestAudienceURLComparison(t *testing.T) {
	as := newAS(t, nil)
	for _, tc := range audienceCases {
		t.Run(tc.name, func(t *testing.T) {
			tok := as.Issue(introspectiontest.TokenOptions{Audience: []string{"https://other.example/", tc.aud}})
			v := newVerifier(t, as.IntrospectionURL, nil, func(s *Settings) { s.Audience = []string{tc.want} })
			_, err := v.Verify(context.Background(), tok)
			if tc.sameTarget {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, ErrAudienceMismatch)
			}
		})
	}
}

// TestSameAudienceSymmetric checks that the comparison does not depend on
// which side is configured.
func TestSameAudienceSymmetric(t *testing.T) {
	for _, tc := range audienceCases {
		require.Equal(t, tc.sameTarget, sameAudience(tc.want, tc.aud), tc.name)
		assert.Equal(t, tc.sameTarget, sameAudience(tc.aud, tc.want), tc.name)
	}
}

// TestSameAudienceAllocatesNothing checks that the comparison, which runs on
// every cache hit, costs no allocation.
func TestSameAudienceAllocatesNothing(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		_ = audienceIn("HTTPS://MCP.example.com:443/mcp", []string{"https://other.example/", "https://mcp.example.com/mcp"})
	})
	assert.Zero(t, allocs)
}
