"""The server command as a script: ``wsgiapp.run()`` with this script's argv.

    wsgi_run.py [server options] [APP_MODULE]
"""

from _impl import wsgiapp

if __name__ == "__main__":
    wsgiapp.run()
