// Command controlplane runs ONE real Kubernetes cluster in this OS process: embedded etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler, all from upstream Go modules,
// plus simulated nodes whose pods really get scheduled and report Running/Ready.
//
// It is test and demo infrastructure for kommander-operator. One cluster per process because
// several Kubernetes components install process-wide state (signal handlers, feature gates).
//
//	controlplane --name attached-1 --state-dir .e2e/attached-1
//
// writes <state-dir>/kubeconfig (admin), then <state-dir>/ready once the cluster can run pods.
// Ports, certificates and etcd data live in the state directory, so a restarted cluster comes
// back on the same address with its objects.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/klog/v2"
)

func main() {
	name := flag.String("name", "", "cluster name (required), e.g. management or attached-1")
	stateDir := flag.String("state-dir", "", "directory for etcd data, certificates, ports and kubeconfig (required)")
	nodes := flag.Int("nodes", 2, "number of simulated nodes")
	flag.Parse()
	if *name == "" || *stateDir == "" {
		fmt.Fprintln(os.Stderr, "usage: controlplane --name NAME --state-dir DIR [--nodes N]")
		os.Exit(2)
	}
	dir, err := filepath.Abs(*stateDir)
	if err == nil {
		err = run(*name, dir, *nodes)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "controlplane %s: %v\n", *name, err)
		os.Exit(1)
	}
}

func run(name, dir string, nodeCount int) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(dir, "ready"))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	started := time.Now()
	pki, err := loadOrCreatePKI(dir)
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	ports, err := loadOrPickPorts(dir)
	if err != nil {
		return fmt.Errorf("ports: %w", err)
	}

	etcd, err := startEtcd(name, dir, ports)
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	defer etcd.Close()

	kubeconfig := filepath.Join(dir, "kubeconfig")
	kcm, err := newControllerManager(kubeconfig, pki)
	if err != nil {
		return fmt.Errorf("kube-controller-manager options: %w", err)
	}
	scheduler, err := newScheduler(kubeconfig)
	if err != nil {
		return fmt.Errorf("kube-scheduler options: %w", err)
	}

	// The pod network's proxy listens before the API server starts, which is told its address.
	podNet := &podNetwork{dir: dir}
	podLn, err := listen(dir)
	if err != nil {
		return fmt.Errorf("pod network: %w", err)
	}
	egress, err := egressConfig(dir, podLn)
	if err != nil {
		return fmt.Errorf("pod network: %w", err)
	}
	go podNet.serve(ctx, podLn)

	apiErr := make(chan error, 1)
	go func() { apiErr <- runAPIServer(ctx, dir, pki, ports, egress) }()

	if err := writeKubeconfig(kubeconfig, name, ports.APIServer, pki); err != nil {
		return err
	}
	client, err := adminClient(kubeconfig)
	if err != nil {
		return err
	}
	if err := waitForAPIServer(ctx, client, apiErr); err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	podNet.client.Store(client)

	ctrlErr := make(chan error, 2)
	go func() { ctrlErr <- runControllerManager(ctx, kcm) }()
	go func() { ctrlErr <- runScheduler(ctx, scheduler) }()

	nodeNet, err := nodeSubnet(dir)
	if err != nil {
		return err
	}
	sim := newSimulator(client, name, nodeCount, nodeNet)
	sim.providerPrefix = providerPrefix(dir)
	if err := sim.registerNodes(ctx); err != nil {
		return fmt.Errorf("nodes: %w", err)
	}
	go sim.run(ctx)

	if err := waitUntilPodsCanRun(ctx, client, ctrlErr); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "ready"), []byte(time.Since(started).String()+"\n"), 0o600); err != nil {
		return err
	}
	fmt.Printf("cluster %s ready in %s: export KUBECONFIG=%s\n", name, time.Since(started).Round(10*time.Millisecond), kubeconfig)

	select {
	case <-ctx.Done():
	case err := <-apiErr:
		return fmt.Errorf("kube-apiserver stopped: %w", err)
	case err := <-ctrlErr:
		return fmt.Errorf("controller stopped: %w", err)
	}
	klog.Flush()
	fmt.Printf("cluster %s stopping\n", name)
	_ = os.Remove(filepath.Join(dir, "ready"))
	// Components wind down on the cancelled context; give the API server a moment to drain.
	select {
	case <-apiErr:
	case <-time.After(5 * time.Second):
	}
	return nil
}

var errStopped = errors.New("stopped before the cluster was ready")
