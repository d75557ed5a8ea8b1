// The two packages of k8s.io/kubernetes that MetalLB v0.13.5's controller imports, reduced to
// what it calls (AddToScheme): the module proxy serves k8s.io/kubernetes only from v1.34.0, and
// MetalLB pins v1.24.0.
module k8s.io/kubernetes

go 1.25

require k8s.io/api v0.24.0
