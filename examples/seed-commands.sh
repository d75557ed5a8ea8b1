# The kubectl lines of D2iQ Kommander's "Load Balancing" guide, verbatim (placeholders as the
# guide writes them). operator/tests/crds.rs checks them against the operator's types and the
# metallb-0.12.3 catalog app; e2e/demo.sh runs the first with a real workspace name.

# The namespace of the workspace MetalLB is deployed to ("kommander" for the host cluster):
export WORKSPACE_NAMESPACE=$(kubectl get workspace <type_your_workspace_name> -o jsonpath='{.status.namespaceRef.name}')

# Make MetalLB 0.12 load a config it refused (the operator's gate makes this unnecessary):
kubectl -n kommander delete pod -l app=metallb,component=controller
