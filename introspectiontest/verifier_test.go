package introspectiontest_test

import (
	"context"
	"testing"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestKeepActiveReachesErrTokenExpired shows what KeepActive is for: the
// server answers an expired token as active, so the verifier's own exp
// check refuses it with ErrTokenExpired.
func TestKeepActiveReachesErrTokenExpired(t *testing.T) {
	as := introspectiontest.NewServer()
	defer as.Close()
	issued := time.Now().Add(-2 * time.Hour)
	as.SetNow(func() time.Time { return issued })
	kept := as.Issue(introspectiontest.TokenOptions{KeepActive: true})
	plain := as.Issue(introspectiontest.TokenOptions{})
	as.SetNow(time.Now)

	v, err := introspection.NewVerifier(introspection.Settings{
		IntrospectionURL: as.IntrospectionURL,
		ClientID:         introspectiontest.ClientID,
		ClientSecret:     introspectiontest.ClientSecret,
	})
	require.NoError(t, err)
	defer v.Close()
	_, err = v.Verify(context.Background(), kept)
	assert.ErrorIs(t, err, introspection.ErrTokenExpired)
	_, err = v.Verify(context.Background(), plain)
	assert.ErrorIs(t, err, introspection.ErrInvalidToken)
	assert.NotErrorIs(t, err, introspection.ErrTokenExpired, "an inactive answer says nothing of exp")
}
