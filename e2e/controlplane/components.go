package main

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.etcd.io/etcd/server/v3/embed"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	cliflag "k8s.io/component-base/cli/flag"
	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	apiserveroptions "k8s.io/kubernetes/cmd/kube-apiserver/app/options"
	kcmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	kcmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"
	schedulerapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	scheduleroptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"
)

const (
	serviceCIDR        = "10.96.0.0/16"
	serviceAPIServerIP = "10.96.0.1"
)

// The controllers a cluster needs for Deployments, DaemonSets and namespaces to behave as on a
// real cluster. node-lifecycle is left out: our simulated nodes do not post heartbeats.
var controllers = []string{
	"deployment-controller",
	"replicaset-controller",
	"daemonset-controller",
	"statefulset-controller",
	"job-controller",
	"garbage-collector-controller",
	"namespace-controller",
	"serviceaccount-controller",
	"serviceaccount-token-controller",
	"root-ca-certificate-publisher-controller",
	"endpointslice-controller",
	"pod-garbage-collector-controller",
	"clusterrole-aggregation-controller",
}

// parseInto fills a component's option struct through its own flag definitions: the
// component's validation and defaulting apply exactly as for the real binary, without its
// cobra command (which would install process-wide signal handlers).
func parseInto(sets cliflag.NamedFlagSets, args []string) error {
	fs := pflag.NewFlagSet("component", pflag.ContinueOnError)
	for _, f := range sets.FlagSets {
		fs.AddFlagSet(f)
	}
	return fs.Parse(args)
}

func startEtcd(name, dir string, ports Ports) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Name = name
	cfg.Dir = filepath.Join(dir, "etcd")
	client := url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(ports.EtcdClient)}
	peer := url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(ports.EtcdPeer)}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(name)
	cfg.LogLevel = "error"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, err
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("not ready after 60s")
	}
}

func runAPIServer(ctx context.Context, dir string, p *PKI, ports Ports, egress string) error {
	s := apiserveroptions.NewServerRunOptions()
	args := []string{
		"--etcd-servers=http://127.0.0.1:" + strconv.Itoa(ports.EtcdClient),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(ports.APIServer),
		"--cert-dir=" + filepath.Join(dir, "apiserver-certs"),
		"--tls-cert-file=" + p.ServingCert,
		"--tls-private-key-file=" + p.ServingKey,
		"--client-ca-file=" + p.CACert,
		"--token-auth-file=" + p.TokenFile,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p.SAKey,
		"--service-account-signing-key-file=" + p.SAKey,
		"--service-cluster-ip-range=" + serviceCIDR,
		"--allow-privileged=true",
		"--endpoint-reconciler-type=none",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--watch-cache=true",
		"--egress-selector-config-file=" + egress,
	}
	if err := parseInto(s.Flags(), args); err != nil {
		return err
	}
	if err := s.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	rest.SetDefaultWarningHandler(rest.NoWarnings{})
	completed, err := s.Complete(ctx)
	if err != nil {
		return err
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return utilerrors.NewAggregate(errs)
	}
	return apiserverapp.Run(ctx, completed)
}

// newControllerManager parses the controller-manager's options. It must run before the API
// server's flags are built: its Flags() changes a feature-gate default, which is only allowed
// until the first flag set closes the gates.
func newControllerManager(kubeconfig string, p *PKI) (*kcmoptions.KubeControllerManagerOptions, error) {
	s, err := kcmoptions.NewKubeControllerManagerOptions()
	if err != nil {
		return nil, err
	}
	sets := s.Flags(kcmapp.KnownControllers(), kcmapp.ControllersDisabledByDefault(), kcmapp.ControllerAliases())
	s.ParsedFlags = &sets
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--secure-port=0",
		"--leader-elect=false",
		"--use-service-account-credentials=false",
		"--service-account-private-key-file=" + p.SAKey,
		"--root-ca-file=" + p.CACert,
		"--concurrent-deployment-syncs=10",
		"--concurrent-replicaset-syncs=10",
		// Each controller's client is rate-limited on its own, upstream at 20 requests/s. The
		// scale bench puts hundreds of KommanderClusters' Deployments behind one embedded
		// cluster, where a fleet has a controller-manager per cluster: at 20/s the Deployment
		// controller alone held a cold start of 1,000 clusters to ~135 s (4 writes per
		// Deployment, 667 Deployments per server). This stands in for those many.
		"--kube-api-qps=400",
		"--kube-api-burst=800",
		"--controllers=" + strings.Join(controllers, ","),
	}
	return s, parseInto(sets, args)
}

// runControllerManager runs it once the kubeconfig's API server answers.
func runControllerManager(ctx context.Context, s *kcmoptions.KubeControllerManagerOptions) error {
	c, err := s.Config(ctx, kcmapp.KnownControllers(), kcmapp.ControllersDisabledByDefault(), kcmapp.ControllerAliases())
	if err != nil {
		return err
	}
	return kcmapp.Run(ctx, c.Complete())
}

// newScheduler parses the scheduler's options (before the API server's, like the
// controller-manager's).
func newScheduler(kubeconfig string) (*scheduleroptions.Options, error) {
	opts := scheduleroptions.NewOptions()
	args := []string{"--kubeconfig=" + kubeconfig, "--secure-port=0", "--leader-elect=false"}
	return opts, parseInto(*opts.Flags, args)
}

func runScheduler(ctx context.Context, opts *scheduleroptions.Options) error {
	cc, sched, err := schedulerapp.Setup(ctx, opts)
	if err != nil {
		return err
	}
	return schedulerapp.Run(ctx, cc, sched)
}

func adminClient(kubeconfig string) (*kubernetes.Clientset, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 100, 200
	return kubernetes.NewForConfig(cfg)
}

// waitForAPIServer polls /readyz until it answers ok, the server fails, or time runs out.
func waitForAPIServer(ctx context.Context, c *kubernetes.Clientset, failed <-chan error) error {
	deadline := time.After(90 * time.Second)
	for {
		body, err := c.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && string(body) == "ok" {
			return nil
		}
		select {
		case err := <-failed:
			return fmt.Errorf("exited: %v", err)
		case <-ctx.Done():
			return errStopped
		case <-deadline:
			return fmt.Errorf("not ready after 90s (last answer: %q, %v)", body, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitUntilPodsCanRun waits for what a pod needs on a fresh cluster: the default namespace's
// ServiceAccount (created by the serviceaccount controller) and a schedulable node.
func waitUntilPodsCanRun(ctx context.Context, c *kubernetes.Clientset, failed <-chan error) error {
	deadline := time.After(90 * time.Second)
	for {
		_, saErr := c.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		nodes, nodeErr := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if saErr == nil && nodeErr == nil && schedulable(nodes.Items) {
			return nil
		}
		select {
		case err := <-failed:
			return fmt.Errorf("controller exited: %v", err)
		case <-ctx.Done():
			return errStopped
		case <-deadline:
			if saErr != nil && !apierrors.IsNotFound(saErr) {
				return fmt.Errorf("default ServiceAccount: %v", saErr)
			}
			return fmt.Errorf("cluster cannot run pods after 90s (default ServiceAccount: %v, nodes: %v)", saErr, nodeErr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// schedulable: at least one node that takes ordinary pods.
func schedulable(nodes []corev1.Node) bool {
	for _, n := range nodes {
		if n.Spec.Unschedulable {
			continue
		}
		blocked := false
		for _, t := range n.Spec.Taints {
			if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
				blocked = true
			}
		}
		if !blocked {
			return true
		}
	}
	return false
}
