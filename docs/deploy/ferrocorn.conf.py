# /etc/ferrocorn/ferrocorn.conf.py: ferrocorn behind nginx on the same machine.
#
# Gunicorn's config-file format: plain Python, one variable per setting. Start with
#     ferrocorn -c /etc/ferrocorn/ferrocorn.conf.py
# A HUP (`systemctl reload ferrocorn`) reads this file again and replaces the workers.

wsgi_app = "myproject.wsgi:application"
chdir = "/srv/myproject"

# Where nginx connects (nginx-tcp.conf); `-b unix:PATH` on the command line replaces it.
# Under systemd socket activation (ferrocorn.socket) the socket systemd hands over is used
# instead, and a HUP that finds this line changed keeps systemd's socket (with a warning).
bind = ["127.0.0.1:8000"]

# gthread keeps nginx's upstream connections open between requests; the sync worker closes
# the connection after every response, so nginx would connect anew for each request.
worker_class = "gthread"
workers = 2
threads = 8
# Longer than nginx's `keepalive_timeout` in the upstream block (60 s), so that nginx, not
# ferrocorn, closes an idle connection: a request nginx sends on a connection ferrocorn has
# just closed would fail.
keepalive = 75

# Only nginx, on this machine, may tell ferrocorn the request came over https. (Peers on a
# unix socket are always trusted.)
forwarded_allow_ips = "127.0.0.1,::1"
# Only the header nginx sets on every request. Gunicorn's default also believes
# X-Forwarded-Protocol and X-Forwarded-Ssl, which nginx passes on from the client unchanged.
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}

# A stop (TERM) or reload (HUP) gives requests in flight this long to finish. systemd's
# TimeoutStopSec (ferrocorn.service) must be longer.
graceful_timeout = 30

# stdout and stderr: the journal under systemd. The first field is the client's address,
# which nginx sends as X-Forwarded-For (REMOTE_ADDR is nginx's own).
accesslog = "-"
access_log_format = '%({x-forwarded-for}i)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(L)s'
