#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# `make run`: the manager vmcryptd and one local host agent on their
# embedded defaults, the manager in the foreground: state in ./run
# (SQLite, a native key provider "local" as the default, the agent's
# datastore), HTTPS on 127.0.0.1:8443 (manager, VMCRYPT_LISTEN) and
# 127.0.0.1:7443 (agent, VMCRYPT_HOST_LISTEN). On the first start the agent
# is added to the manager (thumbprint taken from the agent itself, join
# token passed through a pipe) and admin's password is printed once.
# Ctrl-C (SIGINT) or SIGTERM stops both cleanly; the state stays.
set -eu
cd "$(dirname "$0")/.."
top=$PWD
listen=${VMCRYPT_LISTEN:-127.0.0.1:8443}
hlisten=${VMCRYPT_HOST_LISTEN:-127.0.0.1:7443}
V=$top/build/cli/vmcrypt
umask 077
mkdir -p run
export XDG_CONFIG_HOME=$top/run/cli
conf=run/vmcryptd.conf
if [ ! -f "$conf" ]; then
	cat > "$conf" <<CONF
# vmcryptd configuration written by 'make run' (see docs/API.md).
data-dir = $top/run/manager
listen = $listen
native-provider = local
CONF
fi
first=no
[ -f run/manager/vmcryptd.db ] || first=yes

hpid= mpid=
stop() {
	[ -n "$mpid" ] && kill -TERM "$mpid" 2>/dev/null || true
	[ -n "$hpid" ] && kill -TERM "$hpid" 2>/dev/null || true
	wait 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT TERM

# Start a daemon with its stderr on a pipe we read until it is listening;
# the lines are echoed, except the one-time join token, which is kept.
start_agent() {
	exec 3< <(exec build/host/vmcrypt-hostd --data-dir "$top/run/host" --listen "$hlisten" 2>&1)
	hpid=$!
	token= tp=
	while IFS= read -r line <&3; do
		case $line in
		*"join token: "*) token=${line#*join token: }; token=${token%% *}
			echo "vmcrypt-hostd: first start: join token received (used to add this host)";;
		*"certificate SHA-256 "*) tp=${line##*SHA-256 }; echo "$line";;
		*"listening on"*) echo "$line"; break;;
		*) echo "$line";;
		esac
	done
	cat <&3 >&2 &
}

start_agent
if [ "$first" = yes ]; then
	password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=' | head -c 20)
	build/manager/vmcryptd --config "$conf" --admin-password-fd 4 4<<<"$password" 2>&1 &
else
	build/manager/vmcryptd --config "$conf" 2>&1 &
fi
mpid=$!
for _ in $(seq 100); do
	[ -f run/manager/tls/manager.crt ] && curl -s -o /dev/null --cacert run/manager/tls/manager.crt \
		"https://$listen/api/v1/session" && break
	sleep 0.1
done

if [ "$first" = yes ]; then
	"$V" login --server "https://$listen" --user admin \
		--ca-file "$top/run/manager/tls/manager.crt" --password-fd 4 4<<<"$password" >/dev/null
	"$V" host add "$hlisten" --name local-host --thumbprint "$tp" --join-token-fd 5 5<<<"$token"
	cat <<MSG

First start. The password of user 'admin' (shown only now; change it with
'vmcrypt passwd'):

    $password

MSG
	unset password token
fi

cat <<MSG
vmcryptd on https://$listen, host agent on https://$hlisten, state in $top/run.
This shell's CLI session is in run/cli; elsewhere:

  build/cli/vmcrypt login --server https://$listen --user admin \\
      --ca-file $top/run/manager/tls/manager.crt

First commands to try (keys of the native provider are handed out once it
has a backup):
  export XDG_CONFIG_HOME=$top/run/cli
  build/cli/vmcrypt host list
  build/cli/vmcrypt provider backup local --out run/local.backup --password-file FILE
  build/cli/vmcrypt policy add gold --encrypt yes
  build/cli/vmcrypt vm create web --host HOST-ID --disk 64M --policy gold --vtpm
  build/cli/vmcrypt vm list
  build/cli/vmcrypt vm power-on VM-ID      # vm show VM-ID: its disks' NBD sockets
  build/cli/vmcrypt vm rekey VM-ID --deep  # while it is on
  build/cli/vmcrypt events list
The disk tools' tour is 'make demo'. Ctrl-C stops both daemons.

MSG
wait "$mpid"
