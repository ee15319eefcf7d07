#!/usr/bin/env python3
"""Tiny capture server for kubectl request bodies.

Usage: capture.py OUTDIR   (prints the chosen port on stdout, first line)
Every non-GET request body is saved to OUTDIR/NNN-METHOD.bin and the request
line plus headers to OUTDIR/NNN-METHOD.txt. POST/PUT/PATCH answer 201/200
with a JSON echo whose kind is derived from the path; GET answers minimal
legacy discovery (aggregated discovery is not offered, so kubectl falls back).
"""
import json
import os
import socket
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

OUT = sys.argv[1]
COUNTER = [0]

CORE = [("namespaces", "Namespace", False), ("configmaps", "ConfigMap", True),
        ("secrets", "Secret", True), ("services", "Service", True),
        ("pods", "Pod", True), ("serviceaccounts", "ServiceAccount", True),
        ("resourcequotas", "ResourceQuota", True), ("nodes", "Node", False)]
GROUPS = {
    "apps/v1": [("deployments", "Deployment", True)],
    "batch/v1": [("jobs", "Job", True), ("cronjobs", "CronJob", True)],
    "rbac.authorization.k8s.io/v1": [("roles", "Role", True), ("rolebindings", "RoleBinding", True),
                                     ("clusterroles", "ClusterRole", False),
                                     ("clusterrolebindings", "ClusterRoleBinding", False)],
    "networking.k8s.io/v1": [("ingresses", "Ingress", True)],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    "scheduling.k8s.io/v1": [("priorityclasses", "PriorityClass", False)],
    "certificates.k8s.io/v1": [("certificatesigningrequests", "CertificateSigningRequest", False)],
    "authorization.k8s.io/v1": [("selfsubjectaccessreviews", "SelfSubjectAccessReview", False)],
    "authentication.k8s.io/v1": [("selfsubjectreviews", "SelfSubjectReview", False)],
}
KINDS = {plural: kind for plural, kind, _ in CORE}
for gv, res in GROUPS.items():
    for plural, kind, _ in res:
        KINDS[plural] = kind


def resource_list(gv, res):
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
            "resources": [{"name": p, "singularName": "", "namespaced": ns, "kind": k,
                           "verbs": ["create", "delete", "get", "list", "patch", "update"]}
                          for p, k, ns in res]}


class H(BaseHTTPRequestHandler):
    def _save(self, body):
        COUNTER[0] += 1
        base = os.path.join(OUT, "%03d-%s" % (COUNTER[0], self.command))
        with open(base + ".bin", "wb") as f:
            f.write(body)
        with open(base + ".txt", "w") as f:
            f.write("%s %s\n%s" % (self.command, self.path, self.headers))

    def _json(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        p = self.path.split("?")[0]
        with open(os.path.join(OUT, "gets.log"), "a") as f:
            f.write("GET %s Accept=%s\n" % (self.path, self.headers.get("Accept")))
        if p == "/api":
            return self._json(200, {"kind": "APIVersions", "versions": ["v1"],
                                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
        if p == "/apis":
            groups = []
            for gv in GROUPS:
                g, v = gv.split("/")
                ver = {"groupVersion": gv, "version": v}
                groups.append({"name": g, "versions": [ver], "preferredVersion": ver})
            return self._json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        if p == "/api/v1":
            rl = resource_list("v1", CORE)
            # Advertise the eviction subresource so that `kubectl drain` evicts instead of deleting.
            rl["resources"].append({"name": "pods/eviction", "singularName": "", "namespaced": True,
                                    "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"]})
            return self._json(200, rl)
        if p.startswith("/apis/") and p[6:] in GROUPS:
            return self._json(200, resource_list(p[6:], GROUPS[p[6:]]))
        # Fixed objects so that drain / certificate approve get far enough to write.
        if p == "/api/v1/nodes/n1":
            return self._json(200, {"kind": "Node", "apiVersion": "v1",
                                    "metadata": {"name": "n1", "resourceVersion": "1"}, "spec": {}})
        if p == "/api/v1/pods":
            return self._json(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {},
                                    "items": [{"metadata": {"name": "p1", "namespace": "default", "uid": "u1",
                                                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                                                 "name": "rs", "uid": "u2", "controller": True}]},
                                               "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
                                               "status": {"phase": "Running"}}]})
        if p.startswith("/apis/certificates.k8s.io/v1/certificatesigningrequests/c1"):
            return self._json(200, {"kind": "CertificateSigningRequest", "apiVersion": "certificates.k8s.io/v1",
                                    "metadata": {"name": "c1", "resourceVersion": "1"},
                                    "spec": {"request": "", "signerName": "example.com/x", "usages": ["digital signature"]},
                                    "status": {}})
        # Any other named object: a minimal one, so that read-modify-write commands proceed.
        parts = [x for x in p.split("/") if x]
        for i, seg in enumerate(parts[:-1]):
            if seg in KINDS and seg != "namespaces" and i + 2 == len(parts):
                api = parts[1] + "/" + parts[2] if parts[0] == "apis" else "v1"
                ns = parts[parts.index("namespaces") + 1] if "namespaces" in parts else None
                obj = {"kind": KINDS[seg], "apiVersion": api,
                       "metadata": {"name": parts[-1], "resourceVersion": "1", "uid": "u1", "labels": {"app": parts[-1]}}}
                if ns:
                    obj["metadata"]["namespace"] = ns
                if seg == "deployments":
                    obj["spec"] = {"replicas": 1, "selector": {"matchLabels": {"app": parts[-1]}},
                                   "template": {"metadata": {"labels": {"app": parts[-1]}},
                                                "spec": {"containers": [{"name": "nginx", "image": "nginx",
                                                                         "ports": [{"containerPort": 80}]}]}}}
                return self._json(200, obj)
        if p == "/version":
            return self._json(200, {"major": "1", "minor": "36", "gitVersion": "v1.36.0"})
        return self._json(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                "reason": "NotFound", "code": 404})

    def _write(self, code):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        self._save(body)
        parts = [x for x in self.path.split("?")[0].split("/") if x]
        kind = "Status"
        name = "x"
        for i, seg in enumerate(parts):
            if seg in KINDS:
                kind = KINDS[seg]
                name = parts[i + 1] if i + 1 < len(parts) else "x"
        api = "v1"
        if len(parts) >= 3 and parts[0] == "apis":
            api = parts[1] + "/" + parts[2]
        self._json(code, {"kind": kind, "apiVersion": api, "metadata": {"name": name}})

    def do_POST(self):
        self._write(201)

    def do_PUT(self):
        self._write(200)

    def do_PATCH(self):
        self._write(200)

    def do_DELETE(self):
        self._write(200)

    def log_message(self, *a):
        pass


s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
srv = HTTPServer(("127.0.0.1", port), H)
print(port, flush=True)
srv.serve_forever()
