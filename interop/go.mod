module github.com/mcpauth/introspection/interop

go 1.26.0

require (
	github.com/mcpauth/introspection v0.0.0-00010101000000-000000000000
	github.com/stretchr/testify v1.12.1
)

require (
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/sync v0.25.0 // indirect
)

replace github.com/mcpauth/introspection => ../
