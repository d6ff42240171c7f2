package main

import (
	"fmt"
	"path"
	"reflect"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validate runs the per-object semantic checks.
func (o *object) validate() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	nameFn := apivalidation.NameIsDNSSubdomain
	if o.info.dns1035 {
		nameFn = apivalidation.NameIsDNS1035Label
	}
	// A namespaced object may leave its namespace to `helm install -n`; a cluster-scoped one
	// must not have one.
	requiresNS := o.info.namespaced && o.meta.Namespace != ""
	for _, e := range apivalidation.ValidateObjectMeta(o.meta, requiresNS, nameFn, field.NewPath("metadata")) {
		errs = append(errs, e)
	}

	switch v := o.value.(type) {
	case *appsv1.DaemonSet:
		errs = append(errs, checkWorkload(v.Spec.Selector, &v.Spec.Template, true)...)
		if u := v.Spec.UpdateStrategy.RollingUpdate; u != nil {
			if isZero(u.MaxUnavailable) && isZero(u.MaxSurge) {
				add("spec.updateStrategy.rollingUpdate: maxUnavailable and maxSurge cannot both be 0")
			}
		}
	case *appsv1.Deployment:
		errs = append(errs, checkWorkload(v.Spec.Selector, &v.Spec.Template, true)...)
		if v.Spec.Replicas != nil && *v.Spec.Replicas < 0 {
			add("spec.replicas must be >= 0")
		}
	case *appsv1.StatefulSet:
		errs = append(errs, checkWorkload(v.Spec.Selector, &v.Spec.Template, true)...)
	case *batchv1.Job:
		errs = append(errs, checkWorkload(v.Spec.Selector, &v.Spec.Template, false)...)
		rp := v.Spec.Template.Spec.RestartPolicy
		if rp != corev1.RestartPolicyNever && rp != corev1.RestartPolicyOnFailure {
			add("spec.template.spec.restartPolicy must be Never or OnFailure for a Job, got %q", rp)
		}
	case *corev1.Pod:
		errs = append(errs, checkPodSpec(&v.Spec, field.NewPath("spec"))...)
	case *corev1.Service:
		if len(v.Spec.Ports) == 0 && v.Spec.Type != corev1.ServiceTypeExternalName {
			add("spec.ports: a Service needs at least one port")
		}
		for i, p := range v.Spec.Ports {
			if msgs := validation.IsValidPortNum(int(p.Port)); len(msgs) > 0 {
				add("spec.ports[%d].port: %v", i, msgs)
			}
			if len(v.Spec.Ports) > 1 && p.Name == "" {
				add("spec.ports[%d].name: required when a Service has several ports", i)
			}
		}
	case *policyv1.PodDisruptionBudget:
		if v.Spec.MinAvailable != nil && v.Spec.MaxUnavailable != nil {
			add("spec: minAvailable and maxUnavailable cannot both be set")
		}
		if v.Spec.Selector == nil {
			add("spec.selector: required (an empty selector matches no pods in policy/v1)")
		}
	case *autoscalingv2.HorizontalPodAutoscaler:
		minR := int32(1)
		if v.Spec.MinReplicas != nil {
			minR = *v.Spec.MinReplicas
		}
		if minR < 1 {
			add("spec.minReplicas must be >= 1")
		}
		if v.Spec.MaxReplicas < minR {
			add("spec.maxReplicas (%d) must be >= minReplicas (%d)", v.Spec.MaxReplicas, minR)
		}
		if v.Spec.ScaleTargetRef.Name == "" || v.Spec.ScaleTargetRef.Kind == "" {
			add("spec.scaleTargetRef: kind and name are required")
		}
		if len(v.Spec.Metrics) == 0 {
			add("spec.metrics: give at least one metric")
		}
	case *rbacv1.ClusterRole:
		errs = append(errs, checkRules(v.Rules)...)
	case *rbacv1.Role:
		errs = append(errs, checkRules(v.Rules)...)
	case *rbacv1.ClusterRoleBinding:
		errs = append(errs, checkBinding(v.RoleRef, v.Subjects, true)...)
	case *rbacv1.RoleBinding:
		errs = append(errs, checkBinding(v.RoleRef, v.Subjects, false)...)
	case *monitoringv1.ServiceMonitor:
		if len(v.Spec.Endpoints) == 0 {
			add("spec.endpoints: at least one endpoint is required")
		}
		errs = append(errs, checkSelector(&v.Spec.Selector, "spec.selector")...)
	case *monitoringv1.PodMonitor:
		if len(v.Spec.PodMetricsEndpoints) == 0 {
			add("spec.podMetricsEndpoints: at least one endpoint is required")
		}
		errs = append(errs, checkSelector(&v.Spec.Selector, "spec.selector")...)
	case *ScaledObject:
		errs = append(errs, checkScaledObject(v)...)
	case *TriggerAuthentication:
		if len(v.Spec.SecretTargetRef) == 0 && len(v.Spec.Env) == 0 {
			add("spec: no authentication source")
		}
		for i, r := range v.Spec.SecretTargetRef {
			if r.Parameter == "" || r.Name == "" || r.Key == "" {
				add("spec.secretTargetRef[%d]: parameter, name and key are required", i)
			}
		}
	}
	return errs
}

func isZero(v *intstr.IntOrString) bool {
	if v == nil {
		return false
	}
	return (v.Type == intstr.Int && v.IntVal == 0) || (v.Type == intstr.String && v.StrVal == "0%")
}

func checkSelector(sel *metav1.LabelSelector, where string) []error {
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		return []error{fmt.Errorf("%s: empty selector", where)}
	}
	if _, err := metav1.LabelSelectorAsSelector(sel); err != nil {
		return []error{fmt.Errorf("%s: %v", where, err)}
	}
	return nil
}

// checkWorkload: the selector must be set and match the pod template's labels, as apps/v1
// requires, then the pod spec checks.
func checkWorkload(sel *metav1.LabelSelector, tmpl *corev1.PodTemplateSpec, required bool) []error {
	var errs []error
	if sel == nil {
		if required {
			errs = append(errs, fmt.Errorf("spec.selector: required"))
		}
	} else if s, err := metav1.LabelSelectorAsSelector(sel); err != nil {
		errs = append(errs, fmt.Errorf("spec.selector: %v", err))
	} else if s.Empty() {
		errs = append(errs, fmt.Errorf("spec.selector: empty selector"))
	} else if !s.Matches(labels.Set(tmpl.Labels)) {
		errs = append(errs, fmt.Errorf("spec.template.metadata.labels %v do not match spec.selector %v",
			tmpl.Labels, s))
	}
	tp := field.NewPath("spec", "template", "metadata")
	for _, e := range metavalidation.ValidateLabels(tmpl.Labels, tp.Child("labels")) {
		errs = append(errs, e)
	}
	for _, e := range apivalidation.ValidateAnnotations(tmpl.Annotations, tp.Child("annotations")) {
		errs = append(errs, e)
	}
	return append(errs, checkPodSpec(&tmpl.Spec, field.NewPath("spec", "template", "spec"))...)
}

func checkPodSpec(spec *corev1.PodSpec, p *field.Path) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	volumes := map[string]bool{}
	for i, v := range spec.Volumes {
		vp := p.Child("volumes").Index(i)
		if msgs := validation.IsDNS1123Label(v.Name); len(msgs) > 0 {
			add("%s.name %q: %v", vp, v.Name, msgs)
		}
		if volumes[v.Name] {
			add("%s.name %q: duplicate volume", vp, v.Name)
		}
		volumes[v.Name] = true
		if n := countSet(reflect.ValueOf(v.VolumeSource)); n != 1 {
			add("%s: exactly one volume source must be set, found %d", vp, n)
		}
		if v.HostPath != nil && !path.IsAbs(v.HostPath.Path) {
			add("%s.hostPath.path %q must be absolute", vp, v.HostPath.Path)
		}
	}
	if len(spec.Containers) == 0 {
		add("%s.containers: at least one container is required", p)
	}
	names := map[string]bool{}
	check := func(c *corev1.Container, cp *field.Path) {
		if msgs := validation.IsDNS1123Label(c.Name); len(msgs) > 0 {
			add("%s.name %q: %v", cp, c.Name, msgs)
		}
		if names[c.Name] {
			add("%s.name %q: duplicate container name", cp, c.Name)
		}
		names[c.Name] = true
		if c.Image == "" {
			add("%s.image: required", cp)
		}
		ports := map[string]int32{}
		for i, port := range c.Ports {
			pp := cp.Child("ports").Index(i)
			if msgs := validation.IsValidPortNum(int(port.ContainerPort)); len(msgs) > 0 {
				add("%s.containerPort: %v", pp, msgs)
			}
			if port.Name != "" {
				if msgs := validation.IsValidPortName(port.Name); len(msgs) > 0 {
					add("%s.name %q: %v", pp, port.Name, msgs)
				}
				ports[port.Name] = port.ContainerPort
			}
		}
		mounts := map[string]bool{}
		for i, m := range c.VolumeMounts {
			mp := cp.Child("volumeMounts").Index(i)
			if !volumes[m.Name] {
				add("%s.name %q: no volume of that name in the pod", mp, m.Name)
			}
			if !path.IsAbs(m.MountPath) {
				add("%s.mountPath %q must be absolute", mp, m.MountPath)
			}
			if mounts[m.MountPath] {
				add("%s.mountPath %q: mounted twice", mp, m.MountPath)
			}
			mounts[m.MountPath] = true
		}
		for i, e := range c.Env {
			ep := cp.Child("env").Index(i)
			if msgs := validation.IsEnvVarName(e.Name); len(msgs) > 0 {
				add("%s.name %q: %v", ep, e.Name, msgs)
			}
			if e.ValueFrom != nil {
				if e.Value != "" {
					add("%s: value and valueFrom are exclusive", ep)
				}
				if n := countSet(reflect.ValueOf(*e.ValueFrom)); n != 1 {
					add("%s.valueFrom: exactly one source must be set, found %d", ep, n)
				}
				if r := e.ValueFrom.SecretKeyRef; r != nil && (r.Name == "" || r.Key == "") {
					add("%s.valueFrom.secretKeyRef: name and key are required", ep)
				}
				if r := e.ValueFrom.FieldRef; r != nil && r.FieldPath == "" {
					add("%s.valueFrom.fieldRef.fieldPath: required", ep)
				}
			}
		}
		for _, probe := range []struct {
			name string
			pr   *corev1.Probe
		}{{"livenessProbe", c.LivenessProbe}, {"readinessProbe", c.ReadinessProbe},
			{"startupProbe", c.StartupProbe}} {
			if probe.pr == nil {
				continue
			}
			pp := cp.Child(probe.name)
			if n := countSet(reflect.ValueOf(probe.pr.ProbeHandler)); n != 1 {
				add("%s: exactly one handler must be set, found %d", pp, n)
			}
			if h := probe.pr.HTTPGet; h != nil {
				errs = append(errs, checkPort(h.Port, ports, pp.Child("httpGet", "port"))...)
			}
			if h := probe.pr.TCPSocket; h != nil {
				errs = append(errs, checkPort(h.Port, ports, pp.Child("tcpSocket", "port"))...)
			}
		}
		for name, req := range c.Resources.Requests {
			if lim, ok := c.Resources.Limits[name]; ok && req.Cmp(lim) > 0 {
				add("%s.resources: request %s %s exceeds limit %s", cp, name, req.String(), lim.String())
			}
		}
		if sc := c.SecurityContext; sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot &&
			sc.RunAsUser != nil && *sc.RunAsUser == 0 {
			add("%s.securityContext: runAsNonRoot with runAsUser 0 can never start", cp)
		}
	}
	for i := range spec.InitContainers {
		check(&spec.InitContainers[i], p.Child("initContainers").Index(i))
	}
	for i := range spec.Containers {
		check(&spec.Containers[i], p.Child("containers").Index(i))
	}
	for i, t := range spec.Tolerations {
		if t.Operator == corev1.TolerationOpExists && t.Value != "" {
			add("%s: value must be empty when operator is Exists", p.Child("tolerations").Index(i))
		}
		if t.Key == "" && t.Operator != corev1.TolerationOpExists {
			add("%s: operator must be Exists when key is empty", p.Child("tolerations").Index(i))
		}
	}
	for i, c := range spec.TopologySpreadConstraints {
		cp := p.Child("topologySpreadConstraints").Index(i)
		if c.MaxSkew < 1 {
			add("%s.maxSkew must be >= 1", cp)
		}
		if c.TopologyKey == "" {
			add("%s.topologyKey: required", cp)
		}
		if c.WhenUnsatisfiable != corev1.DoNotSchedule && c.WhenUnsatisfiable != corev1.ScheduleAnyway {
			add("%s.whenUnsatisfiable %q: must be DoNotSchedule or ScheduleAnyway", cp, c.WhenUnsatisfiable)
		}
	}
	return errs
}

func checkPort(port intstr.IntOrString, named map[string]int32, p *field.Path) []error {
	if port.Type == intstr.String {
		if _, ok := named[port.StrVal]; !ok {
			return []error{fmt.Errorf("%s: %q names no port of this container", p, port.StrVal)}
		}
		return nil
	}
	if msgs := validation.IsValidPortNum(int(port.IntVal)); len(msgs) > 0 {
		return []error{fmt.Errorf("%s: %v", p, msgs)}
	}
	return nil
}

// countSet counts the non-nil pointer fields of a struct (a "one of" union).
func countSet(v reflect.Value) int {
	n := 0
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		if f.Kind() == reflect.Pointer && !f.IsNil() {
			n++
		}
	}
	return n
}

func checkRules(rules []rbacv1.PolicyRule) []error {
	var errs []error
	for i, r := range rules {
		if len(r.Verbs) == 0 {
			errs = append(errs, fmt.Errorf("rules[%d].verbs: required", i))
		}
		if len(r.Resources) == 0 && len(r.NonResourceURLs) == 0 {
			errs = append(errs, fmt.Errorf("rules[%d]: resources or nonResourceURLs required", i))
		}
	}
	return errs
}

func checkBinding(ref rbacv1.RoleRef, subjects []rbacv1.Subject, cluster bool) []error {
	var errs []error
	if ref.APIGroup != rbacv1.GroupName {
		errs = append(errs, fmt.Errorf("roleRef.apiGroup must be %s", rbacv1.GroupName))
	}
	if ref.Kind != "ClusterRole" && (cluster || ref.Kind != "Role") {
		errs = append(errs, fmt.Errorf("roleRef.kind %q not allowed here", ref.Kind))
	}
	if ref.Name == "" {
		errs = append(errs, fmt.Errorf("roleRef.name: required"))
	}
	for i, s := range subjects {
		if s.Kind == rbacv1.ServiceAccountKind && s.Namespace == "" && cluster {
			errs = append(errs, fmt.Errorf("subjects[%d].namespace: required for a ServiceAccount in a ClusterRoleBinding", i))
		}
		if s.Name == "" {
			errs = append(errs, fmt.Errorf("subjects[%d].name: required", i))
		}
	}
	return errs
}

func checkScaledObject(so *ScaledObject) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	s := so.Spec
	if s.ScaleTargetRef == nil || s.ScaleTargetRef.Name == "" {
		add("spec.scaleTargetRef.name: required")
	}
	if len(s.Triggers) == 0 {
		add("spec.triggers: at least one trigger is required")
	}
	if s.MinReplicaCount != nil && s.MaxReplicaCount != nil && *s.MinReplicaCount > *s.MaxReplicaCount {
		add("spec: minReplicaCount %d > maxReplicaCount %d", *s.MinReplicaCount, *s.MaxReplicaCount)
	}
	for i, t := range s.Triggers {
		if t.Type == "" {
			add("spec.triggers[%d].type: required", i)
		}
		if t.Type == "kafka" {
			for _, k := range []string{"bootstrapServers", "consumerGroup"} {
				if t.Metadata[k] == "" {
					add("spec.triggers[%d].metadata.%s: required by the kafka scaler", i, k)
				}
			}
		}
	}
	return errs
}
