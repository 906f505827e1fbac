module github.com/mcpauth/introspection

go 1.26

require golang.org/x/sync v0.25.0

require (
	github.com/stretchr/testify v1.12.1
	go.yaml.in/yaml/v3 v3.0.5 // indirect
)
