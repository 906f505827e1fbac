package main

import (
	"testing"

	"github.com/mcpauth/introspection/examples/internal/e2e"
)

func TestEndToEnd(t *testing.T) { e2e.RunWithTestServer(t, newHandler) }

func TestDemo(t *testing.T) { e2e.RunDemo(t, run) }

func TestEndToEndOIDCProvider(t *testing.T) { e2e.RunWithOIDCProvider(t, newHandler) }
