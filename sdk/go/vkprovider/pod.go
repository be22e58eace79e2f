// DecodePod: the fields of a Pod's pod_json (the API server's JSON) that most providers need,
// without depending on k8s.io/api. Providers that need more decode pod_json into corev1.Pod.
package vkprovider

import (
	"encoding/json"
	"fmt"

	providerv1 "github.com/vk-project/vk/sdk/go/gen/vk/provider/v1"
)

// PodInfo is a subset of a Kubernetes v1 Pod.
type PodInfo struct {
	Metadata struct {
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		// RestartPolicy is "Always" (the default when empty), "OnFailure" or "Never".
		RestartPolicy                 string          `json:"restartPolicy"`
		TerminationGracePeriodSeconds *int64          `json:"terminationGracePeriodSeconds"`
		InitContainers                []ContainerInfo `json:"initContainers"`
		Containers                    []ContainerInfo `json:"containers"`
	} `json:"spec"`
}

// ContainerInfo is a subset of a Kubernetes v1 Container.
type ContainerInfo struct {
	Name         string            `json:"name"`
	WorkingDir   string            `json:"workingDir"`
	VolumeMounts []VolumeMountInfo `json:"volumeMounts"`
}

// VolumeMountInfo is a subset of a Kubernetes v1 VolumeMount.
type VolumeMountInfo struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
	SubPath   string `json:"subPath"`
	ReadOnly  bool   `json:"readOnly"`
}

// DecodePod decodes pod.PodJson. An empty pod_json gives zero values (restart policy Always).
func DecodePod(pod *providerv1.Pod) (*PodInfo, error) {
	info := &PodInfo{}
	if len(pod.GetPodJson()) > 0 {
		if err := json.Unmarshal(pod.GetPodJson(), info); err != nil {
			return nil, fmt.Errorf("pod_json of %s/%s is not a Pod: %w", pod.GetNamespace(), pod.GetName(), err)
		}
	}
	if info.Spec.RestartPolicy == "" {
		info.Spec.RestartPolicy = "Always"
	}
	return info, nil
}

// GracePeriod is the pod's terminationGracePeriodSeconds, 30 when unset.
func (p *PodInfo) GracePeriod() int64 {
	if p.Spec.TerminationGracePeriodSeconds != nil {
		return *p.Spec.TerminationGracePeriodSeconds
	}
	return 30
}

// ShouldRestart applies the restart policy to a container that exited with exitCode.
func (p *PodInfo) ShouldRestart(exitCode int32) bool {
	switch p.Spec.RestartPolicy {
	case "Never":
		return false
	case "OnFailure":
		return exitCode != 0
	default:
		return true
	}
}
