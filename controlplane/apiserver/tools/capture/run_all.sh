#!/usr/bin/env bash
# Re-captures the protobuf fixtures in ../src/fixtures from a real kubectl.
# Usage: capture/run_all.sh [path-to-kubectl]   (default /tmp/kvenv/bin/kubectl, v1.36.4)
# For every case it saves NAME.pb (the request body), NAME.req (request line +
# headers) and, for generator commands, NAME.kubectl.json (the same command with
# --dry-run=client -o json: kubectl's own JSON encoding of the same object).
set -euo pipefail
KUBECTL=${1:-/tmp/kvenv/bin/kubectl}
HERE=$(cd "$(dirname "$0")" && pwd)
FIX="$HERE/../src/fixtures"
WORK=$(mktemp -d)
mkdir -p "$FIX" "$WORK/out"
python3 "$HERE/capture.py" "$WORK/out" > "$WORK/port" &
PID=$!
trap 'kill $PID' EXIT
sleep 1
PORT=$(head -1 "$WORK/port")
printf 'filecontent' > "$WORK/file.txt"
printf '\x00\x01\xff' > "$WORK/bin.dat"

cap() { # cap NAME DRYRUN(yes|no) kubectl-args...
  local name=$1 dry=$2; shift 2
  local after
  "$KUBECTL" --server="http://127.0.0.1:$PORT" --cache-dir="$WORK/cache" "$@" > /dev/null 2>&1 || true
  after=$(ls "$WORK/out"/*.bin | sort | tail -1)
  cp "$after" "$FIX/$name.pb"
  cp "${after%.bin}.txt" "$FIX/$name.req"
  sed -i '/^Kubectl-Session:/d; /^Host:/d' "$FIX/$name.req"
  if [ "$dry" = yes ]; then
    # The dry-run flags must come before a `--` that starts the container command.
    local args=() seen=no a
    for a in "$@"; do
      if [ "$a" = "--" ] && [ $seen = no ]; then args+=(--dry-run=client -o json); seen=yes; fi
      args+=("$a")
    done
    [ $seen = no ] && args+=(--dry-run=client -o json)
    "$KUBECTL" --server="http://127.0.0.1:$PORT" --cache-dir="$WORK/cache" "${args[@]}" > "$FIX/$name.kubectl.json"
  fi
  echo "$name: kubectl $*" | sed "s#$WORK#/tmp#g" >> "$WORK/commands.txt"
}

cap namespace yes create namespace pbns
cap configmap yes create configmap cm1 --from-literal=k1=v1 --from-literal=k2=v2
cap configmap_demo yes -n demo create configmap cm2 --from-literal=a=b
cap configmap_files yes create configmap cm3 --from-file="$WORK/file.txt" --from-file=bin="$WORK/bin.dat"
cap secret yes create secret generic s1 --from-literal=password=hunter2
cap secret_demo_type yes -n demo create secret generic s2 --from-literal=user=admin --type=Opaque
cap secret_docker yes create secret docker-registry dr1 --docker-server=r.io --docker-username=u --docker-password=p
cap deployment yes create deployment web --image=nginx:1.27 --replicas=2 --port=80
cap deployment_demo_cmd yes -n demo create deployment api --image=busybox:1.36 -- sleep 3600
cap service_clusterip yes create service clusterip web --tcp=80:8080
cap service_clusterip_demo yes -n demo create service clusterip api --tcp=8080:80 --tcp=9090
cap service_headless yes create service clusterip hl --clusterip=None
cap service_nodeport yes create service nodeport np1 --tcp=5678:8080 --node-port=30080
cap service_loadbalancer yes create service loadbalancer lb1 --tcp=5678:http
cap service_externalname yes create service externalname en1 --external-name=example.com
cap serviceaccount yes create serviceaccount sa1
cap quota yes create quota q1 --hard=cpu=1,memory=1G,pods=2 --scopes=BestEffort
cap role yes create role r1 --verb=get,list --resource=pods,deployments.apps --resource-name=a
cap rolebinding yes create rolebinding rb1 --role=r1 --user=alice --serviceaccount=demo:sa1
cap clusterrole yes create clusterrole cr1 --verb=get --resource=nodes --non-resource-url=/healthz
cap clusterrolebinding yes create clusterrolebinding crb1 --clusterrole=cr1 --group=devs
cap job yes create job j1 --image=busybox -- echo hi
cap cronjob yes create cronjob cj1 --image=busybox --schedule='*/5 * * * *' -- echo hi
cap ingress yes create ingress ing1 --class=nginx --rule='foo.com/bar*=svc1:8080,tls=sec1' --default-backend=defsvc:http --annotation=a=b
cap pdb yes create poddisruptionbudget pdb1 --selector=app=web --min-available=50%
cap priorityclass yes create priorityclass pc1 --value=1000 --description=hi --preemption-policy=Never
cap token no create token sa1 --duration=10m --audience=aud1
cap selfsubjectaccessreview no auth can-i get pods -n demo
cap selfsubjectreview no auth whoami
cap deleteoptions_drain no drain n1 --ignore-daemonsets --disable-eviction --timeout=3s
cap deleteoptions_drain_grace no drain n1 --ignore-daemonsets --disable-eviction --grace-period=7 --timeout=3s
cp "$WORK/commands.txt" "$FIX/COMMANDS.txt"
