package introspection

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// envNames are the variables SettingsFromEnv reads, without the prefix.
var envNames = []string{"URL", "CLIENT_ID", "CLIENT_SECRET", "CLIENT_SECRET_FILE", "CLIENT_AUTH_METHOD", "TIMEOUT",
	"REQUIRED_SCOPES", "AUDIENCE", "ISSUER", "LEEWAY", "CACHE_TTL", "MAX_CACHE_SIZE", "NEGATIVE_CACHE_TTL", "ALLOW_INSECURE_HTTP",
	"SCOPE_SEPARATOR", "DPOP", "DPOP_ALGORITHMS", "DPOP_PROOF_WINDOW", "PUBLIC_BASE_URL", "TRUST_FORWARDED_HEADERS",
	"STALE_IF_ERROR", "LOCAL_CACHE_TTL", "BREAKER_THRESHOLD", "BREAKER_MIN_BACKOFF", "BREAKER_MAX_BACKOFF",
	"PRIVATE_KEY_FILE", "PRIVATE_KEY_ID", "TLS_CERT_FILE", "TLS_KEY_FILE", "DISCOVERY_REFRESH"}

// clearEnv empties every variable SettingsFromEnv reads under each prefix.
func clearEnv(t *testing.T, prefixes ...string) {
	t.Helper()
	for _, p := range prefixes {
		for _, n := range envNames {
			t.Setenv(p+n, "")
		}
	}
}

// TestSettingsFromEnvJoinsPrefixWithUnderscore shows that a prefix without
// a trailing underscore gets one: "NOTES" reads NOTES_URL, never NOTESURL.
func TestSettingsFromEnvJoinsPrefixWithUnderscore(t *testing.T) {
	tests := []struct{ prefix, wantURL string }{
		{"NOTES", "https://as/underscore"},
		{"NOTES_", "https://as/underscore"},
		{"", "https://as/default"},
	}
	for _, tc := range tests {
		t.Run(tc.prefix, func(t *testing.T) {
			clearEnv(t, "NOTES", "NOTES_", "INTROSPECTION_")
			t.Setenv("NOTESURL", "https://as/no-underscore")
			t.Setenv("NOTESCLIENT_ID", "wrong")
			t.Setenv("NOTES_URL", "https://as/underscore")
			t.Setenv("NOTES_CLIENT_ID", "rs")
			t.Setenv("INTROSPECTION_URL", "https://as/default")
			t.Setenv("INTROSPECTION_CLIENT_ID", "rs")
			s, err := SettingsFromEnv(tc.prefix)
			require.NoError(t, err)
			assert.Equal(t, tc.wantURL, s.IntrospectionURL)
			assert.Equal(t, "rs", s.ClientID)
		})
	}
}

// TestSettingsFromEnvErrorsNameTheJoinedVariable shows that a bad value is
// reported under the name it was read from.
func TestSettingsFromEnvErrorsNameTheJoinedVariable(t *testing.T) {
	clearEnv(t, "NOTES_")
	t.Setenv("NOTES_TIMEOUT", "soon")
	_, err := SettingsFromEnv("NOTES")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `NOTES_TIMEOUT="soon"`)
}

// TestSettingsFromEnvTrimsSecretNewline shows that INTROSPECTION_CLIENT_SECRET
// loses a trailing newline, as a secret read from CLIENT_SECRET_FILE does,
// and keeps every other character.
func TestSettingsFromEnvTrimsSecretNewline(t *testing.T) {
	tests := []struct{ in, want string }{
		{"s3cret\n", "s3cret"},
		{"s3cret\r\n", "s3cret"},
		{"s3cret\n\n", "s3cret"},
		{" s3 cret ", " s3 cret "},
		{"s3\ncret", "s3\ncret"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			clearEnv(t, "INTROSPECTION_")
			t.Setenv("INTROSPECTION_CLIENT_SECRET", tc.in)
			s, err := SettingsFromEnv("")
			require.NoError(t, err)
			assert.Equal(t, tc.want, s.ClientSecret)
		})
	}
}

// TestSettingsFromEnvRefusesEmptySecretFile shows that a secret file
// holding nothing but a line break is an error naming the variable.
func TestSettingsFromEnvRefusesEmptySecretFile(t *testing.T) {
	for _, content := range []string{"", "\n", "\r\n"} {
		clearEnv(t, "INTROSPECTION_")
		file := t.TempDir() + "/secret"
		require.NoError(t, writeFile(file, content))
		t.Setenv("INTROSPECTION_CLIENT_SECRET_FILE", file)
		_, err := SettingsFromEnv("")
		require.Error(t, err, "%q", content)
		assert.Contains(t, err.Error(), "INTROSPECTION_CLIENT_SECRET_FILE")
	}
}

// TestEnvErrorNamesTheVariable shows that EnvError turns NewVerifier's
// errors about settings read by SettingsFromEnv into errors that name the
// environment variable to set.
func TestEnvErrorNamesTheVariable(t *testing.T) {
	full := map[string]string{"URL": "https://as.example.com/i", "CLIENT_ID": "rs", "CLIENT_SECRET": "s3cret"}
	tests := []struct {
		name   string
		prefix string
		unset  string            // a variable of full left unset
		set    map[string]string // more variables
		want   string
	}{
		{name: "no URL", unset: "URL", want: "introspection: INTROSPECTION_URL is not set (nor INTROSPECTION_ISSUER, to discover it)"},
		{name: "no client id", unset: "CLIENT_ID", want: "introspection: INTROSPECTION_CLIENT_ID is not set"},
		{name: "no client secret", unset: "CLIENT_SECRET",
			want: "introspection: INTROSPECTION_CLIENT_SECRET or INTROSPECTION_CLIENT_SECRET_FILE is not set"},
		{name: "custom prefix", prefix: "NOTES", unset: "CLIENT_ID", want: "introspection: NOTES_CLIENT_ID is not set"},
		{name: "custom prefix with underscore", prefix: "NOTES_", unset: "CLIENT_ID", want: "introspection: NOTES_CLIENT_ID is not set"},
		{name: "unknown auth method", set: map[string]string{"CLIENT_AUTH_METHOD": "none"},
			want: `introspection: unsupported INTROSPECTION_CLIENT_AUTH_METHOD "none" (want one of "client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth")`},
		{name: "plain http", set: map[string]string{"URL": "http://as.example.com/i"},
			want: `introspection: INTROSPECTION_URL "http://as.example.com/i" uses http to a host that is not loopback; use https or set INTROSPECTION_ALLOW_INSECURE_HTTP=true`},
		{name: "credentials in URL", set: map[string]string{"URL": "https://u:p@as.example.com/i"},
			want: "introspection: INTROSPECTION_URL must not carry credentials; use INTROSPECTION_CLIENT_ID and INTROSPECTION_CLIENT_SECRET"},
		{name: "bad required scope", set: map[string]string{"REQUIRED_SCOPES": `read "write"`},
			want: `introspection: INTROSPECTION_REQUIRED_SCOPES holds an invalid scope "\"write\""`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := envPrefix(tc.prefix)
			clearEnv(t, p)
			for k, v := range full {
				if k != tc.unset {
					t.Setenv(p+k, v)
				}
			}
			for k, v := range tc.set {
				t.Setenv(p+k, v)
			}
			s, err := SettingsFromEnv(tc.prefix)
			require.NoError(t, err)
			_, verr := NewVerifier(s)
			require.Error(t, verr)
			err = EnvError(tc.prefix, verr)
			assert.Equal(t, tc.want, err.Error())
			assert.ErrorIs(t, err, verr, "the original error is kept")
		})
	}
}

// TestEnvErrorLeavesOtherErrors shows that EnvError returns nil for nil and
// other errors unchanged.
func TestEnvErrorLeavesOtherErrors(t *testing.T) {
	assert.NoError(t, EnvError("", nil))
	other := errors.New("introspection: something else")
	assert.Equal(t, other, EnvError("", other))
	_, err := NewVerifier(Settings{IntrospectionURL: "https://as/i", ClientID: "rs", ClientSecret: "s", Timeout: -1})
	require.Error(t, err)
	assert.Equal(t, err, EnvError("", err), "a setting the environment does not set")
}

// TestSettingsFromEnvNumbersAtAndPastZero checks the bound on durations and
// the cache size read from the environment: zero is accepted (it means the
// documented default), one unit below zero is an error that names the
// variable.
func TestSettingsFromEnvNumbersAtAndPastZero(t *testing.T) {
	tests := []struct {
		name, value string
		ok          bool
	}{
		{"TIMEOUT", "0s", true},
		{"TIMEOUT", "-1ns", false},
		{"LEEWAY", "0s", true},
		{"LEEWAY", "-1ns", false},
		{"CACHE_TTL", "0", true},
		{"CACHE_TTL", "-1ns", false},
		{"NEGATIVE_CACHE_TTL", "0s", true},
		{"NEGATIVE_CACHE_TTL", "-1ns", false},
		{"MAX_CACHE_SIZE", "0", true},
		{"MAX_CACHE_SIZE", "-1", false},
	}
	for _, tc := range tests {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			clearEnv(t, "INTROSPECTION_")
			t.Setenv("INTROSPECTION_"+tc.name, tc.value)
			s, err := SettingsFromEnv("")
			if !tc.ok {
				require.Error(t, err)
				assert.Contains(t, err.Error(), "INTROSPECTION_"+tc.name+"=")
				return
			}
			require.NoError(t, err)
			assert.Zero(t, s.Timeout+s.Leeway+s.CacheTTL+s.NegativeCacheTTL)
			assert.Zero(t, s.MaxCacheSize)
		})
	}
}

// TestSettingsFromEnvScopeSeparator checks that SCOPE_SEPARATOR sets a
// hierarchical ScopeMatcher, that unset leaves exact matching, and that a
// separator no scope can hold is an error naming the variable.
func TestSettingsFromEnvScopeSeparator(t *testing.T) {
	tests := []struct {
		value   string
		wantErr bool
		implies bool // "files" implies "files:read"
		dotted  bool // "files" implies "files.read"
	}{
		{"", false, false, false},
		{":", false, true, false},
		{" : ", false, true, false},
		{".", false, false, true},
		{`"`, true, false, false},
		{`\`, true, false, false},
		{"é", true, false, false},
		{": .", true, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			clearEnv(t, "INTROSPECTION_")
			t.Setenv("INTROSPECTION_SCOPE_SEPARATOR", tc.value)
			s, err := SettingsFromEnv("")
			if tc.wantErr {
				require.Error(t, err)
				assert.Contains(t, err.Error(), "introspection: INTROSPECTION_SCOPE_SEPARATOR=")
				assert.Nil(t, s.ScopeMatcher)
				return
			}
			require.NoError(t, err)
			if tc.value == "" {
				assert.Nil(t, s.ScopeMatcher, "exact matching")
				return
			}
			require.NotNil(t, s.ScopeMatcher)
			assert.Equal(t, tc.implies, s.ScopeMatcher("files", "files:read"))
			assert.Equal(t, tc.dotted, s.ScopeMatcher("files", "files.read"))
			assert.False(t, s.ScopeMatcher("files:read", "files"))
		})
	}
}

// TestSettingsFromEnvDPoP shows the DPoP variables: read into their fields,
// and a bad value an error that names the variable.
func TestSettingsFromEnvDPoP(t *testing.T) {
	base := map[string]string{"URL": "https://as.example/introspect", "CLIENT_ID": "rs", "CLIENT_SECRET": "s"}
	set := func(t *testing.T, vars map[string]string) {
		clearEnv(t, "INTROSPECTION_")
		for k, v := range base {
			t.Setenv("INTROSPECTION_"+k, v)
		}
		for k, v := range vars {
			t.Setenv("INTROSPECTION_"+k, v)
		}
	}
	t.Run("read", func(t *testing.T) {
		set(t, map[string]string{
			"DPOP": "required", "DPOP_ALGORITHMS": "ES256, EdDSA", "DPOP_PROOF_WINDOW": "2m",
			"PUBLIC_BASE_URL": "https://MCP.example:443/", "TRUST_FORWARDED_HEADERS": "true",
		})
		s, err := SettingsFromEnv("")
		require.NoError(t, err)
		assert.Equal(t, DPoPRequired, s.DPoP)
		assert.Equal(t, []string{"ES256", "EdDSA"}, s.DPoPAlgorithms)
		assert.Equal(t, 2*time.Minute, s.DPoPProofWindow)
		assert.Equal(t, "https://MCP.example:443/", s.PublicBaseURL)
		assert.True(t, s.TrustForwardedHeaders)
		v, err := NewVerifier(s)
		require.NoError(t, err)
		defer v.Close()
		assert.Equal(t, DPoPRequired, v.DPoPMode())
		assert.Equal(t, []string{"ES256", "EdDSA"}, v.DPoPAlgorithms())
	})
	t.Run("unset", func(t *testing.T) {
		set(t, nil)
		s, err := SettingsFromEnv("")
		require.NoError(t, err)
		v, err := NewVerifier(s)
		require.NoError(t, err)
		defer v.Close()
		assert.Equal(t, DPoPAllowed, v.DPoPMode())
	})
	for _, tc := range []struct {
		name, value, want string
		inEnv             bool // SettingsFromEnv refuses it; else NewVerifier does
	}{
		{"DPOP", "on", `introspection: unknown INTROSPECTION_DPOP mode "on" (want "off", "allowed" or "required")`, false},
		{"DPOP_PROOF_WINDOW", "5", `introspection: INTROSPECTION_DPOP_PROOF_WINDOW="5" is not a non-negative duration such as 5s`, true},
		{"TRUST_FORWARDED_HEADERS", "maybe", `introspection: INTROSPECTION_TRUST_FORWARDED_HEADERS="maybe" is not a boolean`, true},
		{"PUBLIC_BASE_URL", "https://mcp.example/?a", `introspection: invalid INTROSPECTION_PUBLIC_BASE_URL: it must not have a query or a fragment`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set(t, map[string]string{tc.name: tc.value})
			s, err := SettingsFromEnv("")
			if tc.inEnv {
				assert.EqualError(t, err, tc.want)
				return
			}
			require.NoError(t, err)
			_, err = NewVerifier(s)
			assert.EqualError(t, EnvError("", err), tc.want)
		})
	}
}

// TestSettingsFromEnvStaleIfError shows STALE_IF_ERROR: read into
// StaleIfError, zero and unset off, a bad or negative value an error that
// names the variable, and without CACHE_TTL an error that names both.
func TestSettingsFromEnvStaleIfError(t *testing.T) {
	base := map[string]string{"URL": "https://as.example/introspect", "CLIENT_ID": "rs", "CLIENT_SECRET": "s", "CACHE_TTL": "1m"}
	tests := []struct {
		value   string
		unset   string // a variable of base left unset
		want    time.Duration
		envErr  string // SettingsFromEnv refuses it
		initErr string // NewVerifier refuses it, as EnvError says
	}{
		{value: "", want: 0},
		{value: "0s", want: 0},
		{value: "5m", want: 5 * time.Minute},
		{value: " 1ns ", want: time.Nanosecond},
		{value: "-1ns", envErr: `introspection: NOTES_STALE_IF_ERROR="-1ns" is not a non-negative duration such as 5s`},
		{value: "5", envErr: `introspection: NOTES_STALE_IF_ERROR="5" is not a non-negative duration such as 5s`},
		{value: "5m", unset: "CACHE_TTL", want: 5 * time.Minute, initErr: "introspection: NOTES_STALE_IF_ERROR needs NOTES_CACHE_TTL: stale answers are cache entries kept longer"},
	}
	for _, tc := range tests {
		t.Run(tc.value+" "+tc.unset, func(t *testing.T) {
			clearEnv(t, "NOTES_")
			for k, v := range base {
				if k != tc.unset {
					t.Setenv("NOTES_"+k, v)
				}
			}
			t.Setenv("NOTES_STALE_IF_ERROR", tc.value)
			s, err := SettingsFromEnv("NOTES")
			if tc.envErr != "" {
				assert.EqualError(t, err, tc.envErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, s.StaleIfError)
			v, err := NewVerifier(s)
			if tc.initErr != "" {
				assert.EqualError(t, EnvError("NOTES", err), tc.initErr)
				return
			}
			require.NoError(t, err)
			require.NoError(t, v.Close())
		})
	}
}

// TestSettingsFromEnvBreaker shows the circuit breaker's variables: read
// into their fields, and a bad value an error that names the variable.
func TestSettingsFromEnvBreaker(t *testing.T) {
	base := map[string]string{"URL": "https://as.example/introspect", "CLIENT_ID": "rs", "CLIENT_SECRET": "s"}
	set := func(t *testing.T, vars map[string]string) {
		clearEnv(t, "INTROSPECTION_")
		for k, v := range base {
			t.Setenv("INTROSPECTION_"+k, v)
		}
		for k, v := range vars {
			t.Setenv("INTROSPECTION_"+k, v)
		}
	}
	for _, tc := range []struct {
		threshold string
		want      int
	}{{"7", 7}, {"-1", -1}, {"0", 0}, {" 1 ", 1}} {
		t.Run("read "+tc.threshold, func(t *testing.T) {
			set(t, map[string]string{"BREAKER_THRESHOLD": tc.threshold, "BREAKER_MIN_BACKOFF": "2s", "BREAKER_MAX_BACKOFF": "30s"})
			s, err := SettingsFromEnv("")
			require.NoError(t, err)
			assert.Equal(t, tc.want, s.BreakerThreshold)
			assert.Equal(t, 2*time.Second, s.BreakerMinBackoff)
			assert.Equal(t, 30*time.Second, s.BreakerMaxBackoff)
			v, err := NewVerifier(s)
			require.NoError(t, err)
			assert.NoError(t, v.Close())
		})
	}
	t.Run("unset", func(t *testing.T) {
		set(t, nil)
		s, err := SettingsFromEnv("")
		require.NoError(t, err)
		assert.Zero(t, s.BreakerThreshold)
		assert.Zero(t, s.BreakerMinBackoff)
		assert.Zero(t, s.BreakerMaxBackoff)
	})
	for _, tc := range []struct {
		name  string
		vars  map[string]string
		want  string
		inEnv bool // SettingsFromEnv refuses it; else NewVerifier does
	}{
		{"threshold not a number", map[string]string{"BREAKER_THRESHOLD": "five"},
			`introspection: INTROSPECTION_BREAKER_THRESHOLD="five" is not an integer`, true},
		{"threshold a fraction", map[string]string{"BREAKER_THRESHOLD": "2.5"},
			`introspection: INTROSPECTION_BREAKER_THRESHOLD="2.5" is not an integer`, true},
		{"negative min", map[string]string{"BREAKER_MIN_BACKOFF": "-1ns"},
			`introspection: INTROSPECTION_BREAKER_MIN_BACKOFF="-1ns" is not a non-negative duration such as 5s`, true},
		{"max not a duration", map[string]string{"BREAKER_MAX_BACKOFF": "60"},
			`introspection: INTROSPECTION_BREAKER_MAX_BACKOFF="60" is not a non-negative duration such as 5s`, true},
		{"min above max", map[string]string{"BREAKER_MIN_BACKOFF": "2m", "BREAKER_MAX_BACKOFF": "1m"},
			"introspection: INTROSPECTION_BREAKER_MIN_BACKOFF (2m0s) must not be longer than INTROSPECTION_BREAKER_MAX_BACKOFF (1m0s)", false},
		{"max past one hour", map[string]string{"BREAKER_MAX_BACKOFF": "61m"},
			"introspection: INTROSPECTION_BREAKER_MAX_BACKOFF must be at most 1h0m0s, got 1h1m0s", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set(t, tc.vars)
			s, err := SettingsFromEnv("")
			if tc.inEnv {
				assert.EqualError(t, err, tc.want)
				return
			}
			require.NoError(t, err)
			_, err = NewVerifier(s)
			assert.EqualError(t, EnvError("", err), tc.want)
		})
	}
}
