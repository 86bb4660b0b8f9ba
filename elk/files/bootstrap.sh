#!/bin/sh
# Run by the Job elastic-bootstrap (elk/bootstrap.yaml) with curl and a POSIX shell.
# Every step is idempotent; every wait has a deadline. No password is ever printed.
set -eu

API=https://kubernetes.default.svc
SA=/var/run/secrets/kubernetes.io/serviceaccount
AUTH="Authorization: Bearer $(cat "$SA/token")"
DEADLINE=$(( $(date +%s) + ${WAIT_SECONDS:-900} ))

log() { echo "elastic-bootstrap: $*"; }
kube() { curl -sS --cacert "$SA/ca.crt" -H "$AUTH" "$@"; }
random_password() { head -c 32 /dev/urandom | base64 | tr -d '\n/+=' | cut -c1-40; }

# 1. The Secret, created once. An existing one is never modified.
status=$(kube -o /dev/null -w '%{http_code}' "$API/api/v1/namespaces/$NAMESPACE/secrets/$CREDENTIALS_NAME")
if [ "$status" = "404" ]; then
  log "creating Secret $CREDENTIALS_NAME with new random passwords"
  e=$(random_password); k=$(random_password); f=$(random_password)
  body=$(printf '{"apiVersion":"v1","kind":"Secret","metadata":{"name":"%s"},"type":"Opaque","stringData":{"elastic-password":"%s","kibana-password":"%s","filebeat-password":"%s"}}' \
    "$CREDENTIALS_NAME" "$e" "$k" "$f")
  created=$(kube -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    --data "$body" "$API/api/v1/namespaces/$NAMESPACE/secrets")
  case "$created" in
    201|409) ;;
    *) log "creating the Secret failed with HTTP $created"; exit 1 ;;
  esac
elif [ "$status" != "200" ]; then
  log "reading Secret $CREDENTIALS_NAME failed with HTTP $status"; exit 1
fi

# Read the passwords back from the API (whoever created them).
secret=$(kube "$API/api/v1/namespaces/$NAMESPACE/secrets/$CREDENTIALS_NAME")
field() { printf '%s' "$secret" | tr -d ' \n' | sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" | base64 -d; }
ELASTIC=$(field elastic-password); KIBANA=$(field kibana-password); FILEBEAT=$(field filebeat-password)
[ -n "$ELASTIC" ] && [ -n "$KIBANA" ] && [ -n "$FILEBEAT" ] || { log "Secret $CREDENTIALS_NAME lacks a password"; exit 1; }

es() { curl -sS -u "elastic:$ELASTIC" -H 'Content-Type: application/json' "$@"; }

# 2. Wait for Elasticsearch (bounded), then configure it.
until [ "$(es -o /dev/null -w '%{http_code}' "$ES_URL/_cluster/health?wait_for_status=yellow&timeout=10s" || true)" = "200" ]; do
  [ "$(date +%s)" -lt "$DEADLINE" ] || { log "Elasticsearch not ready before the deadline"; exit 1; }
  log "waiting for Elasticsearch"
  sleep 5
done

check() { # check NAME HTTP_CODE
  case "$2" in 2*) log "$1: ok" ;; *) log "$1: HTTP $2"; exit 1 ;; esac
}
check "kibana_system password" "$(es -o /dev/null -w '%{http_code}' -X POST "$ES_URL/_security/user/kibana_system/_password" \
  --data "{\"password\":\"$KIBANA\"}")"
check "role rfma_filebeat_writer" "$(es -o /dev/null -w '%{http_code}' -X PUT "$ES_URL/_security/role/rfma_filebeat_writer" \
  --data '{"cluster":["monitor","read_ilm","read_pipeline"],"indices":[{"names":["logs-rfma.access-*","logs-kubernetes.container-*"],"privileges":["create_doc","auto_configure","view_index_metadata"]}]}')"
check "user filebeat_writer" "$(es -o /dev/null -w '%{http_code}' -X PUT "$ES_URL/_security/user/filebeat_writer" \
  --data "{\"password\":\"$FILEBEAT\",\"roles\":[\"rfma_filebeat_writer\"]}")"
# The record's data stream: mappings, and its lifecycle (data stream lifecycle, in the template).
check "index template rfma-access" "$(es -o /dev/null -w '%{http_code}' -X PUT "$ES_URL/_index_template/rfma-access" \
  --data @/bootstrap/rfma-index-template.json)"

# 3. Wait for Kibana (bounded, a deadline of its own: Kibana starts only once the kibana_system
#    password above is set), then import the data view and the dashboard (files/rfma-kibana.ndjson,
#    saved objects for Kibana 9.1). overwrite=true: importing again replaces them by id.
kbn() { curl -sS -u "elastic:$ELASTIC" -H 'kbn-xsrf: true' "$@"; }
KIBANA_DEADLINE=$(( $(date +%s) + ${KIBANA_WAIT_SECONDS:-600} ))
until [ "$(kbn -o /dev/null -w '%{http_code}' "$KIBANA_URL/api/status" || true)" = "200" ]; do
  [ "$(date +%s)" -lt "$KIBANA_DEADLINE" ] || { log "Kibana not available before the deadline"; exit 1; }
  log "waiting for Kibana"
  sleep 5
done
kbn -o /tmp/import.json -w '%{http_code}' -X POST -F "file=@/bootstrap/rfma-kibana.ndjson" \
  "$KIBANA_URL/api/saved_objects/_import?overwrite=true" > /tmp/import.code
check "Kibana saved objects (HTTP)" "$(cat /tmp/import.code)"
# The import answers 200 even when an object is refused; its body says whether all went in.
grep -q '"success":true' /tmp/import.json || { log "Kibana import refused objects: $(head -c 2000 /tmp/import.json)"; exit 1; }
log "Kibana saved objects: ok"
log "done"
