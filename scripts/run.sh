#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# `make run`: the manager vmcryptd on its embedded defaults, in the
# foreground: state in ./run/manager (SQLite), a native key provider
# "local" as the default, HTTPS on 127.0.0.1:8443 (VMCRYPT_LISTEN to
# change). Ctrl-C (SIGINT) or SIGTERM stops it cleanly; the state stays.
set -eu
cd "$(dirname "$0")/.."
top=$PWD
listen=${VMCRYPT_LISTEN:-127.0.0.1:8443}
umask 077
mkdir -p run
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

cat <<MSG
vmcryptd: starting on https://$listen with the state in $top/run/manager
Log in from another terminal:

  build/cli/vmcrypt login --server https://$listen --user admin \\
      --ca-file $top/run/manager/tls/manager.crt
MSG
if [ "$first" = yes ]; then
	cat <<MSG
  (first start: the one-time password of 'admin' is printed below, once;
   'vmcrypt passwd' changes it, as the first login requires)
MSG
else
	echo "  (with the password you set for 'admin')"
fi
cat <<MSG

Then, for example:
  build/cli/vmcrypt provider list
  build/cli/vmcrypt provider backup local --out run/local.backup --password-file FILE
  build/cli/vmcrypt provider create-key local
  build/cli/vmcrypt events list
(keys of the native provider are handed out once a backup was taken).
The disk tools' tour is 'make demo'. Ctrl-C stops the manager.

MSG
exec build/manager/vmcryptd --config "$conf"
