//go:build tools

// Package tools pins helm so `go build helm.sh/helm/v3/cmd/helm` works here.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
