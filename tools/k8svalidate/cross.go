package main

import (
	"fmt"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// crossCheck verifies references between the objects of one rendered chart: what a Service,
// PDB, HPA, ScaledObject, ServiceMonitor or PodMonitor selects or targets must exist, and a
// workload's ConfigMap/ServiceAccount references must exist unless marked optional.
// External names (existing Secrets, a priority class) are not checked: they live in the
// cluster, not in the chart.
func crossCheck(objs []*object) []error {
	var errs []error
	type podOwner struct {
		o      *object
		labels labels.Set
		spec   *corev1.PodSpec
	}
	var pods []podOwner
	names := map[string]bool{}
	var services []*corev1.Service
	for _, o := range objs {
		names[o.kind+"/"+o.meta.Name] = true
		switch v := o.value.(type) {
		case *appsv1.DaemonSet:
			pods = append(pods, podOwner{o, v.Spec.Template.Labels, &v.Spec.Template.Spec})
		case *appsv1.Deployment:
			pods = append(pods, podOwner{o, v.Spec.Template.Labels, &v.Spec.Template.Spec})
		case *corev1.Service:
			services = append(services, v)
		}
	}
	anyPod := func(sel labels.Selector) bool {
		for _, p := range pods {
			if sel.Matches(p.labels) {
				return true
			}
		}
		return false
	}
	selects := func(o *object, ls *metav1.LabelSelector, what string) {
		sel, err := metav1.LabelSelectorAsSelector(ls)
		if err != nil || sel.Empty() || !anyPod(sel) {
			errs = append(errs, fmt.Errorf("%s: %s selects no pod template of the rendered workloads", o.where, what))
		}
	}
	for _, o := range objs {
		switch v := o.value.(type) {
		case *corev1.Service:
			if len(v.Spec.Selector) > 0 && !anyPod(labels.SelectorFromSet(v.Spec.Selector)) {
				errs = append(errs, fmt.Errorf("%s: spec.selector selects no rendered pod template", o.where))
			}
		case *policyv1.PodDisruptionBudget:
			selects(o, v.Spec.Selector, "spec.selector")
		case *monitoringv1.PodMonitor:
			selects(o, &v.Spec.Selector, "spec.selector")
		case *monitoringv1.ServiceMonitor:
			sel, err := metav1.LabelSelectorAsSelector(&v.Spec.Selector)
			found := false
			for _, s := range services {
				if err == nil && sel.Matches(labels.Set(s.Labels)) {
					found = true
				}
			}
			if !found {
				errs = append(errs, fmt.Errorf("%s: spec.selector selects no rendered Service", o.where))
			}
		case *autoscalingv2.HorizontalPodAutoscaler:
			ref := v.Spec.ScaleTargetRef
			if !names[ref.Kind+"/"+ref.Name] {
				errs = append(errs, fmt.Errorf("%s: scaleTargetRef %s/%s was not rendered", o.where, ref.Kind, ref.Name))
			}
		case *ScaledObject:
			if ref := v.Spec.ScaleTargetRef; ref != nil {
				k := ref.Kind
				if k == "" {
					k = "Deployment"
				}
				if !names[k+"/"+ref.Name] {
					errs = append(errs, fmt.Errorf("%s: scaleTargetRef %s/%s was not rendered", o.where, k, ref.Name))
				}
			}
			for i, t := range v.Spec.Triggers {
				if r := t.AuthenticationRef; r != nil && (r.Kind == "" || r.Kind == "TriggerAuthentication") &&
					!names["TriggerAuthentication/"+r.Name] {
					errs = append(errs, fmt.Errorf("%s: triggers[%d].authenticationRef %s was not rendered", o.where, i, r.Name))
				}
			}
		case *rbacv1.ClusterRoleBinding:
			if v.RoleRef.Kind == "ClusterRole" && !names["ClusterRole/"+v.RoleRef.Name] {
				errs = append(errs, fmt.Errorf("%s: roleRef ClusterRole/%s was not rendered", o.where, v.RoleRef.Name))
			}
			for i, s := range v.Subjects {
				if s.Kind == rbacv1.ServiceAccountKind && !names["ServiceAccount/"+s.Name] {
					errs = append(errs, fmt.Errorf("%s: subjects[%d] ServiceAccount/%s was not rendered", o.where, i, s.Name))
				}
			}
		}
	}
	for _, p := range pods {
		if sa := p.spec.ServiceAccountName; sa != "" && sa != "default" && !names["ServiceAccount/"+sa] {
			errs = append(errs, fmt.Errorf("%s: serviceAccountName %q was not rendered (set serviceAccount.create or name an existing one)",
				p.o.where, sa))
		}
		for _, vol := range p.spec.Volumes {
			if cm := vol.ConfigMap; cm != nil && !(cm.Optional != nil && *cm.Optional) && !names["ConfigMap/"+cm.Name] {
				errs = append(errs, fmt.Errorf("%s: volume %q uses ConfigMap %q, which was not rendered", p.o.where, vol.Name, cm.Name))
			}
		}
	}
	return errs
}
