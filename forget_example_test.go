package introspection_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/introspectiontest"
)

// ExampleVerifier_Forget drops a cached answer once the server has revoked
// its token, so that the next Verify asks the server instead of accepting
// the token until its entry ends.
func ExampleVerifier_Forget() {
	as := introspectiontest.NewServer()
	defer as.Close()
	token := as.Issue(introspectiontest.TokenOptions{Subject: "alice"})

	v, err := introspection.NewVerifier(introspection.Settings{
		IntrospectionURL: as.IntrospectionURL,
		ClientID:         introspectiontest.ClientID,
		ClientSecret:     introspectiontest.ClientSecret,
		CacheTTL:         time.Minute,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	ctx := context.Background()
	tok, err := v.Verify(ctx, token)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.Subject)

	as.Revoke(token) // say, the user logged out
	if err := v.Forget(ctx, token); err != nil {
		log.Fatal(err)
	}
	_, err = v.Verify(ctx, token)
	fmt.Println(errors.Is(err, introspection.ErrTokenInactive))
	// Output:
	// alice
	// true
}
