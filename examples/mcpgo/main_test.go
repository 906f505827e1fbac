package main

import (
	"context"
	"io"
	"testing"

	"github.com/mcpauth/introspection/examples/internal/demo"

	"github.com/mcpauth/introspection/examples/internal/e2e"
)

func TestEndToEnd(t *testing.T) { e2e.RunWithTestServer(t, newHandler) }

func TestDemo(t *testing.T) {
	e2e.RunDemo(t, func(ctx context.Context, addr string, out io.Writer) error {
		return demo.Serve(ctx, addr, out, newHandler)
	})
}

func TestAudienceDefaultsToResourceURL(t *testing.T) {
	e2e.RunConfigured(t, func(ctx context.Context, addr string, out io.Writer) error {
		return demo.Serve(ctx, addr, out, newHandler)
	})
}

func TestEndToEndOIDCProvider(t *testing.T) { e2e.RunWithOIDCProvider(t, newHandler) }
