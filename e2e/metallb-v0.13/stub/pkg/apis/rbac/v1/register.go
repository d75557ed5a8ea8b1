// Package v1 stands in for k8s.io/kubernetes/pkg/apis/rbac/v1: MetalLB only adds the rbac/v1
// types to its scheme.
package v1

import rbacv1 "k8s.io/api/rbac/v1"

// AddToScheme adds the rbac/v1 API types.
var AddToScheme = rbacv1.AddToScheme
