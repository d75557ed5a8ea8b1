//go:build tools

// Package tools pins the MetalLB v0.16 controller so `go build go.universe.tf/metallb/controller` works here.
package tools

import _ "go.universe.tf/metallb/controller"
