// Package v1beta1 stands in for k8s.io/kubernetes/pkg/apis/policy/v1beta1: MetalLB only adds
// the policy/v1beta1 types to its scheme.
package v1beta1

import policyv1beta1 "k8s.io/api/policy/v1beta1"

// AddToScheme adds the policy/v1beta1 API types.
var AddToScheme = policyv1beta1.AddToScheme
