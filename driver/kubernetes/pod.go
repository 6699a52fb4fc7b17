package kubernetes

import (
	"encoding/json"
	"fmt"
	"path"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/internal/userdb"
)

// Labels and annotations of the driver's objects.
const (
	labelManagedBy = "app.kubernetes.io/managed-by"
	managedBy      = "boxrun"
	labelInstance  = "boxrun.dev/instance"
	labelHandle    = "boxrun.dev/handle"
	labelNetwork   = "boxrun.dev/network"
	annotBoxID     = "boxrun.dev/box-id"
	annotBox       = "boxrun.dev/box"
)

// In-pod layout (see package boxinit).
const (
	helperDir     = "/.boxrun"
	initPath      = helperDir + "/init"
	helperBinary  = "/boxrun-init"
	boxContainer  = "box"
	helperVolume  = "boxrun"
	dataVolume    = "data"
	workdirSubdir = "workdir"
	helperDataDir = "/.boxrun-data" // the claim in the init container only
)

// boxMeta is what the claim's annotation keeps to start a box again.
type boxMeta struct {
	BoxID    string          `json:"box_id"`
	Image    string          `json:"image"`
	CPU      int64           `json:"cpu,omitempty"`
	MemoryMB int64           `json:"memory_mb,omitempty"`
	Network  bool            `json:"network,omitempty"`
	Workdir  string          `json:"workdir"`
	Env      []string        `json:"env,omitempty"`
	Volumes  []boxapi.Volume `json:"volumes,omitempty"`
	User     userdb.User     `json:"user"`
}

func (d *Driver) labels(h string) map[string]string {
	return map[string]string{labelManagedBy: managedBy, labelInstance: d.cfg.Instance, labelHandle: h}
}

// selector selects every object of this driver instance.
func (d *Driver) selector() string {
	return labelManagedBy + "=" + managedBy + "," + labelInstance + "=" + d.cfg.Instance
}

// claim is the PersistentVolumeClaim of a new box.
func (d *Driver) claim(h string, m *boxMeta, diskGB int64) (*corev1.PersistentVolumeClaim, error) {
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if diskGB <= 0 {
		diskGB = 1
	}
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{
			Name: h, Labels: d.labels(h),
			Annotations: map[string]string{annotBoxID: m.BoxID, annotBox: string(raw)},
		},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceStorage: resource.MustParse(strconv.FormatInt(diskGB, 10) + "Gi"),
			}},
		},
	}
	if d.cfg.StorageClass != "" {
		sc := d.cfg.StorageClass
		pvc.Spec.StorageClassName = &sc
	}
	return pvc, nil
}

// metaOf reads the box annotation of a claim.
func metaOf(pvc *corev1.PersistentVolumeClaim) (*boxMeta, error) {
	var m boxMeta
	if err := json.Unmarshal([]byte(pvc.Annotations[annotBox]), &m); err != nil {
		return nil, fmt.Errorf("kubernetes: claim %s: bad %s annotation: %w", pvc.Name, annotBox, err)
	}
	return &m, nil
}

// pod is the pod of box h described by m.
func (d *Driver) pod(h string, m *boxMeta) *corev1.Pod {
	no := false
	grace := int64(5)
	labels := d.labels(h)
	if !m.Network {
		labels[labelNetwork] = "none"
	}
	mounts := []corev1.VolumeMount{{Name: helperVolume, MountPath: helperDir}}
	installCmd := []string{helperBinary, "install", helperDir}
	installMounts := []corev1.VolumeMount{{Name: helperVolume, MountPath: helperDir}}
	if m.Workdir != "/" {
		mounts = append(mounts, corev1.VolumeMount{Name: dataVolume, MountPath: m.Workdir, SubPath: workdirSubdir})
		// The init container makes the workdir (0755, as a gVisor box's)
		// before the kubelet would (0750: closed to a non-root box user).
		installCmd = append(installCmd, path.Join(helperDataDir, workdirSubdir))
		installMounts = append(installMounts, corev1.VolumeMount{Name: dataVolume, MountPath: helperDataDir})
	}
	volumes := []corev1.Volume{
		{Name: helperVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: dataVolume, VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: h}}},
	}
	dirType := corev1.HostPathDirectory
	for i, v := range m.Volumes {
		name := "vol" + strconv.Itoa(i)
		volumes = append(volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
			HostPath: &corev1.HostPathVolumeSource{Path: v.HostPath, Type: &dirType},
		}})
		mounts = append(mounts, corev1.VolumeMount{Name: name, MountPath: path.Clean(v.GuestPath), ReadOnly: v.Readonly})
	}
	res := corev1.ResourceList{}
	if m.CPU > 0 {
		res[corev1.ResourceCPU] = *resource.NewQuantity(m.CPU, resource.DecimalSI)
	}
	if m.MemoryMB > 0 {
		res[corev1.ResourceMemory] = *resource.NewQuantity(m.MemoryMB<<20, resource.BinarySI)
	}
	env := make([]corev1.EnvVar, 0, len(m.Env))
	for _, kv := range m.Env {
		k, v, _ := cut(kv)
		env = append(env, corev1.EnvVar{Name: k, Value: v})
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: h, Labels: labels, Annotations: map[string]string{annotBoxID: m.BoxID}},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			AutomountServiceAccountToken:  &no,
			EnableServiceLinks:            &no,
			TerminationGracePeriodSeconds: &grace,
			InitContainers: []corev1.Container{{
				Name: "boxrun-helper", Image: d.cfg.HelperImage, ImagePullPolicy: d.cfg.PullPolicy,
				Command:      installCmd,
				VolumeMounts: installMounts,
			}},
			Containers: []corev1.Container{{
				Name: boxContainer, Image: m.Image, ImagePullPolicy: d.cfg.PullPolicy,
				Command:      []string{initPath, "init"},
				Env:          env,
				WorkingDir:   m.Workdir,
				VolumeMounts: mounts,
				Resources:    corev1.ResourceRequirements{Limits: res, Requests: res},
			}},
			Volumes: volumes,
		},
	}
	if d.cfg.RuntimeClass != "" {
		rc := d.cfg.RuntimeClass
		p.Spec.RuntimeClassName = &rc
	}
	return p
}

func cut(kv string) (k, v string, ok bool) {
	for i := 0; i < len(kv); i++ {
		if kv[i] == '=' {
			return kv[:i], kv[i+1:], true
		}
	}
	return kv, "", false
}

// mergeEnv merges KEY=VALUE lists, later ones winning, keeping first
// positions, and adds a default PATH.
func mergeEnv(lists ...[]string) []string {
	idx := map[string]int{}
	var out []string
	for _, l := range lists {
		for _, kv := range l {
			k, _, _ := cut(kv)
			if i, ok := idx[k]; ok {
				out[i] = kv
				continue
			}
			idx[k] = len(out)
			out = append(out, kv)
		}
	}
	if _, ok := idx["PATH"]; !ok {
		out = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, out...)
	}
	return out
}
