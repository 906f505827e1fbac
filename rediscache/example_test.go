package rediscache_test

import (
	"log"
	"os"
	"time"

	"github.com/mcpauth/introspection"
	"github.com/mcpauth/introspection/rediscache"
	"github.com/redis/go-redis/v9"
)

// Example is the snippet of the package doc and of the README, with the
// settings it leaves out filled in (TestDocSnippetsAreTheExample keeps them
// in step). Each cache call gives up after Options.Timeout with this client
// (TestEachCallGivesUpAfterTimeout).
func Example() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	cache, err := rediscache.New(rdb, nil)
	if err != nil {
		log.Fatal(err)
	}
	v, err := introspection.NewVerifier(introspection.Settings{
		IntrospectionURL: "https://auth.example.com/oauth2/introspect",
		ClientID:         "my-resource-server",
		ClientSecret:     os.Getenv("INTROSPECTION_CLIENT_SECRET"),
		CacheTTL:         time.Minute,
		Cache:            cache,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()
	// Serve with v, for example through introspection.RequireBearerToken.
}
