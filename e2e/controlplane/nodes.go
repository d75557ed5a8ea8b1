package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

// simulator plays the kubelet of every simulated node: it registers the nodes, marks the pods
// the scheduler binds to them Running and Ready (a Job's pods run to completion at once), and
// removes pods being deleted (a kubelet
// confirms the deletion once containers stop; ours stop at once).
type simulator struct {
	client  *kubernetes.Clientset
	cluster string
	nodes   map[string]int // node name -> index, for pod IPs
	queue   workqueue.TypedRateLimitingInterface[string]

	mu     sync.Mutex
	nextIP map[string]int
	// The subnet the nodes' InternalIPs are in: node i is its network address + i.
	nodeNet *net.IPNet
	// When set (DIR/provider-id-prefix, e.g. aws:///us-east-1a/), each node's spec.providerID
	// is it and the node's name: the nodes of a cloud.
	providerPrefix string
}

// providerPrefix reads DIR/provider-id-prefix; empty when there is none (on-premises nodes).
func providerPrefix(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "provider-id-prefix"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// defaultNodeSubnet is every cluster's node subnet unless its state directory has a file
// `node-subnet` naming another (one layer-2 segment for all, or one each).
const defaultNodeSubnet = "172.31.0.0/24"

// nodeSubnet reads the cluster's node subnet from DIR/node-subnet, else the default.
func nodeSubnet(dir string) (*net.IPNet, error) {
	text := defaultNodeSubnet
	if b, err := os.ReadFile(filepath.Join(dir, "node-subnet")); err == nil {
		text = strings.TrimSpace(string(b))
	}
	_, n, err := net.ParseCIDR(text)
	if err != nil || n.IP.To4() == nil {
		return nil, fmt.Errorf("node subnet %q: an IPv4 CIDR is needed", text)
	}
	return n, nil
}

// nodeIP is node i's InternalIP.
func (s *simulator) nodeIP(i int) string {
	base := binary.BigEndian.Uint32(s.nodeNet.IP.To4())
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, base+uint32(i))
	return ip.String()
}

func newSimulator(c *kubernetes.Clientset, cluster string, n int, nodeNet *net.IPNet) *simulator {
	s := &simulator{
		client:  c,
		cluster: cluster,
		nodeNet: nodeNet,
		nodes:   map[string]int{},
		nextIP:  map[string]int{},
		queue:   workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
	}
	for i := 1; i <= n; i++ {
		s.nodes[fmt.Sprintf("%s-node-%d", cluster, i)] = i
	}
	return s
}

func (s *simulator) registerNodes(ctx context.Context) error {
	for name, i := range s.nodes {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name: name,
				Labels: map[string]string{
					"kubernetes.io/hostname": name,
					"kubernetes.io/os":       "linux",
					"kubernetes.io/arch":     "amd64",
					"type":                   "simulated",
				},
			},
			Spec: corev1.NodeSpec{PodCIDR: fmt.Sprintf("10.244.%d.0/24", i)},
		}
		if s.providerPrefix != "" {
			// A cloud's node: what its cloud controller manager would have set.
			node.Spec.ProviderID = s.providerPrefix + name
		}
		created, err := s.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			created, err = s.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		}
		if err != nil {
			return err
		}
		capacity := corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("16"),
			corev1.ResourceMemory: resource.MustParse("64Gi"),
			corev1.ResourcePods:   resource.MustParse("250"),
		}
		now := metav1.Now()
		created.Status = corev1.NodeStatus{
			Capacity:    capacity,
			Allocatable: capacity,
			Phase:       corev1.NodeRunning,
			Conditions: []corev1.NodeCondition{
				{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "simulated node", LastHeartbeatTime: now, LastTransitionTime: now},
				{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, LastHeartbeatTime: now, LastTransitionTime: now},
				{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, LastHeartbeatTime: now, LastTransitionTime: now},
				{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, LastHeartbeatTime: now, LastTransitionTime: now},
			},
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: s.nodeIP(i)},
				{Type: corev1.NodeHostName, Address: name},
			},
			NodeInfo: corev1.NodeSystemInfo{
				KubeletVersion:          "v1.34.4-simulated",
				OperatingSystem:         "linux",
				Architecture:            "amd64",
				ContainerRuntimeVersion: "simulated://1.0",
			},
		}
		updated, err := s.client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
		if err != nil {
			return err
		}
		// The TaintNodesByCondition admission plugin taints new nodes not-ready; the node
		// lifecycle controller would lift it once the kubelet reports Ready. We are the kubelet.
		var taints []corev1.Taint
		for _, t := range updated.Spec.Taints {
			if t.Key != corev1.TaintNodeNotReady {
				taints = append(taints, t)
			}
		}
		if len(taints) != len(updated.Spec.Taints) {
			updated.Spec.Taints = taints
			if _, err := s.client.CoreV1().Nodes().Update(ctx, updated, metav1.UpdateOptions{}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *simulator) run(ctx context.Context) {
	factory := informers.NewSharedInformerFactory(s.client, 0)
	pods := factory.Core().V1().Pods()
	enqueue := func(obj any) {
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			s.queue.Add(key)
		}
	}
	_, _ = pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	})
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	go func() {
		<-ctx.Done()
		s.queue.ShutDown()
	}()
	for i := 0; i < 4; i++ {
		go func() {
			for s.process(ctx, pods.Lister()) {
			}
		}()
	}
}

func (s *simulator) process(ctx context.Context, lister corelisters.PodLister) bool {
	key, quit := s.queue.Get()
	if quit {
		return false
	}
	defer s.queue.Done(key)
	if err := s.sync(ctx, key, lister); err != nil {
		klog.V(2).InfoS("simulator: retrying pod", "pod", key, "err", err)
		s.queue.AddRateLimited(key)
		return true
	}
	s.queue.Forget(key)
	return true
}

func (s *simulator) sync(ctx context.Context, key string, lister corelisters.PodLister) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := lister.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	idx, ours := s.nodes[pod.Spec.NodeName]
	if !ours {
		return nil // not scheduled yet, or on a node we do not play
	}
	if pod.DeletionTimestamp != nil {
		// Containers "stop" at once; confirm the deletion as the kubelet would.
		zero := int64(0)
		err := s.client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{
			GracePeriodSeconds: &zero,
			Preconditions:      &metav1.Preconditions{UID: &pod.UID},
		})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return err
	}
	if pod.Status.Phase == corev1.PodRunning || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return nil
	}
	if image, ok := unpullable(pod); ok {
		return s.backOff(ctx, pod, image)
	}
	if pod.Spec.RestartPolicy != corev1.RestartPolicyAlways && pod.Spec.RestartPolicy != "" {
		return s.finish(ctx, pod, idx)
	}
	running := pod.DeepCopy()
	now := metav1.Now()
	running.Status.Phase = corev1.PodRunning
	running.Status.HostIP = fmt.Sprintf("172.31.0.%d", idx)
	running.Status.HostIPs = []corev1.HostIP{{IP: running.Status.HostIP}}
	if pod.Spec.HostNetwork {
		running.Status.PodIP = running.Status.HostIP
	} else {
		running.Status.PodIP = s.podIP(pod.Spec.NodeName, idx)
	}
	running.Status.PodIPs = []corev1.PodIP{{IP: running.Status.PodIP}}
	running.Status.StartTime = &now
	running.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
	}
	running.Status.ContainerStatuses = nil
	for _, c := range pod.Spec.Containers {
		started := true
		running.Status.ContainerStatuses = append(running.Status.ContainerStatuses, corev1.ContainerStatus{
			Name:         c.Name,
			Image:        c.Image,
			ImageID:      "simulated://" + c.Image,
			ContainerID:  "simulated://" + string(pod.UID) + "/" + c.Name,
			Ready:        true,
			Started:      &started,
			State:        corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
			RestartCount: 0,
		})
	}
	_, err = s.client.CoreV1().Pods(ns).UpdateStatus(ctx, running, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// failingRegistry: a container from it exits 1 at once, as a failing Job's would.
const failingRegistry = "fails.invalid/"

// finish runs a pod that runs to completion (a Job's: restartPolicy Never or OnFailure) the way
// a kubelet reports a container that exits at once: Succeeded with exit code 0, or Failed with
// exit code 1 when an image is from failingRegistry.
func (s *simulator) finish(ctx context.Context, pod *corev1.Pod, idx int) error {
	done := pod.DeepCopy()
	now := metav1.Now()
	phase, code, reason := corev1.PodSucceeded, int32(0), "Completed"
	for _, c := range pod.Spec.Containers {
		if strings.HasPrefix(c.Image, failingRegistry) {
			phase, code, reason = corev1.PodFailed, 1, "Error"
		}
	}
	done.Status.Phase = phase
	done.Status.HostIP = fmt.Sprintf("172.31.0.%d", idx)
	done.Status.HostIPs = []corev1.HostIP{{IP: done.Status.HostIP}}
	done.Status.PodIP = s.podIP(pod.Spec.NodeName, idx)
	done.Status.PodIPs = []corev1.PodIP{{IP: done.Status.PodIP}}
	done.Status.StartTime = &now
	done.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: corev1.ConditionFalse, LastTransitionTime: now, Reason: "PodCompleted"},
		{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: now, Reason: "PodCompleted"},
	}
	done.Status.ContainerStatuses = nil
	for _, c := range pod.Spec.Containers {
		started := false
		done.Status.ContainerStatuses = append(done.Status.ContainerStatuses, corev1.ContainerStatus{
			Name:        c.Name,
			Image:       c.Image,
			ImageID:     "simulated://" + c.Image,
			ContainerID: "simulated://" + string(pod.UID) + "/" + c.Name,
			Started:     &started,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: code, Reason: reason, StartedAt: now, FinishedAt: now,
				ContainerID: "simulated://" + string(pod.UID) + "/" + c.Name,
			}},
		})
	}
	_, err := s.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, done, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// podIP hands out addresses from the node's pod CIDR (10.244.<node>.0/24), wrapping around.
func (s *simulator) podIP(node string, idx int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nextIP[node]%250 + 2
	s.nextIP[node] = n - 1
	return fmt.Sprintf("10.244.%d.%d", idx, n)
}

// unpullableRegistry: an image from it never pulls, as a typo'd tag or a registry the nodes
// cannot reach would on a real cluster; tests use it to make a rollout fail.
const unpullableRegistry = "unpullable.invalid/"

func unpullable(pod *corev1.Pod) (string, bool) {
	for _, c := range pod.Spec.Containers {
		if strings.HasPrefix(c.Image, unpullableRegistry) {
			return c.Image, true
		}
	}
	return "", false
}

// backOff reports the pod as a kubelet does when an image cannot be pulled: Pending, its
// containers waiting in ImagePullBackOff. Written once: a pod already reporting it is left.
func (s *simulator) backOff(ctx context.Context, pod *corev1.Pod, image string) error {
	for _, c := range pod.Status.ContainerStatuses {
		if c.State.Waiting != nil && c.State.Waiting.Reason == "ImagePullBackOff" {
			return nil
		}
	}
	pending := pod.DeepCopy()
	now := metav1.Now()
	pending.Status.Phase = corev1.PodPending
	pending.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "ContainersNotReady", LastTransitionTime: now},
	}
	pending.Status.ContainerStatuses = nil
	for _, c := range pod.Spec.Containers {
		pending.Status.ContainerStatuses = append(pending.Status.ContainerStatuses, corev1.ContainerStatus{
			Name:  c.Name,
			Image: c.Image,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
				Reason:  "ImagePullBackOff",
				Message: fmt.Sprintf("Back-off pulling image %q", image),
			}},
		})
	}
	_, err := s.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pending, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
