"""The auth endpoint: answers the auth subrequests of nginx ``auth_request``, Traefik
ForwardAuth and Envoy's HTTP ``ext_authz`` with the gateway ``Verifier``.

``python -m authz`` runs it (:mod:`authz.__main__`); :mod:`authz.app` wires it together;
:mod:`authz.check` decides, :mod:`authz.http` serves.
"""
