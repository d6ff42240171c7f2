package main

import (
	"errors"
	"fmt"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// kind describes one apiVersion+kind: how to make its Go value and whether it is namespaced.
type kind struct {
	newObj     func() any
	namespaced bool
	// dns1035 is true for kinds whose names must be DNS-1035 labels (Services).
	dns1035 bool
}

var kinds = map[string]kind{
	"v1/ConfigMap":      {func() any { return &corev1.ConfigMap{} }, true, false},
	"v1/Secret":         {func() any { return &corev1.Secret{} }, true, false},
	"v1/Service":        {func() any { return &corev1.Service{} }, true, true},
	"v1/ServiceAccount": {func() any { return &corev1.ServiceAccount{} }, true, false},
	"v1/Pod":            {func() any { return &corev1.Pod{} }, true, false},

	"apps/v1/DaemonSet":   {func() any { return &appsv1.DaemonSet{} }, true, false},
	"apps/v1/Deployment":  {func() any { return &appsv1.Deployment{} }, true, false},
	"apps/v1/StatefulSet": {func() any { return &appsv1.StatefulSet{} }, true, false},
	"batch/v1/Job":        {func() any { return &batchv1.Job{} }, true, false},

	"rbac.authorization.k8s.io/v1/ClusterRole":        {func() any { return &rbacv1.ClusterRole{} }, false, false},
	"rbac.authorization.k8s.io/v1/ClusterRoleBinding": {func() any { return &rbacv1.ClusterRoleBinding{} }, false, false},
	"rbac.authorization.k8s.io/v1/Role":               {func() any { return &rbacv1.Role{} }, true, false},
	"rbac.authorization.k8s.io/v1/RoleBinding":        {func() any { return &rbacv1.RoleBinding{} }, true, false},

	"policy/v1/PodDisruptionBudget":           {func() any { return &policyv1.PodDisruptionBudget{} }, true, false},
	"autoscaling/v2/HorizontalPodAutoscaler":  {func() any { return &autoscalingv2.HorizontalPodAutoscaler{} }, true, false},
	"monitoring.coreos.com/v1/ServiceMonitor": {func() any { return &monitoringv1.ServiceMonitor{} }, true, false},
	"monitoring.coreos.com/v1/PodMonitor":     {func() any { return &monitoringv1.PodMonitor{} }, true, false},
	"keda.sh/v1alpha1/ScaledObject":           {func() any { return &ScaledObject{} }, true, false},
	"keda.sh/v1alpha1/TriggerAuthentication":  {func() any { return &TriggerAuthentication{} }, true, false},
}

// object is one decoded manifest.
type object struct {
	apiVersion, kind string
	meta             *metav1.ObjectMeta
	value            any
	info             kind
	where            string
}

func (o *object) id() string {
	name := "?"
	if o.meta != nil && o.meta.Name != "" {
		name = o.meta.Name
	}
	return o.kind + "/" + name
}

// decode converts one YAML document to JSON and decodes it strictly into its API type.
func decode(doc []byte) (*object, error) {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	if strings.TrimSpace(string(js)) == "null" {
		return nil, nil
	}
	var tm metav1.TypeMeta
	if err := k8sjson.UnmarshalCaseSensitivePreserveInts(js, &tm); err != nil {
		return nil, fmt.Errorf("not a Kubernetes object (%v): %s", err, firstLine(doc))
	}
	if tm.APIVersion == "" || tm.Kind == "" {
		return nil, fmt.Errorf("apiVersion and kind are required: %s", firstLine(doc))
	}
	info, ok := kinds[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		return nil, fmt.Errorf("%s %s: kind not known to this validator (add it to decode.go)",
			tm.APIVersion, tm.Kind)
	}
	value := info.newObj()
	strictErrs, err := k8sjson.UnmarshalStrict(js, value,
		k8sjson.DisallowDuplicateFields, k8sjson.DisallowUnknownFields)
	obj := &object{apiVersion: tm.APIVersion, kind: tm.Kind, value: value, info: info}
	if acc, ok := value.(metav1.ObjectMetaAccessor); ok {
		if m, ok := acc.GetObjectMeta().(*metav1.ObjectMeta); ok {
			obj.meta = m
		}
	}
	if err != nil {
		return obj, fmt.Errorf("does not decode into %s %s: %w", tm.APIVersion, tm.Kind, err)
	}
	if len(strictErrs) > 0 {
		msgs := make([]string, len(strictErrs))
		for i, e := range strictErrs {
			msgs[i] = e.Error()
		}
		return obj, errors.New(strings.Join(msgs, "; "))
	}
	if obj.meta == nil {
		return obj, errors.New("object has no metadata")
	}
	return obj, nil
}
