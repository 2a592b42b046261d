// Package oapicodegen holds the generated client that TestOpenAPIGeneratesClients
// compiles; this file keeps the generated code's runtime dependency in go.mod.
package oapicodegen

import _ "github.com/oapi-codegen/runtime"
