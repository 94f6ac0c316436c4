# The sending path of APEL SSM 3.x (ssm2.Ssm2.send_all with protocol AMS), as `fedsite bench`
# runs it against the simulated AMS: for every element of the outgoing dirq QueueSimple, lock,
# read, sign with `openssl smime -sign -text` in a subprocess (ssm.crypto.sign), wrap as one
# AmsMessage with attribute empaid, publish it alone (retry=3), remove; then purge.
# argv: spool authn_port data_host cert key project topic. Prints one JSON line of counts.
import json
import subprocess
import sys
import time

from argo_ams_library import AmsMessage, ArgoMessagingService
from dirq.QueueSimple import QueueSimple

spool, authn_port, data_host, cert, key, project, topic = sys.argv[1:8]


def sign(text):
    # ssm.crypto.sign: one openssl process per message.
    p = subprocess.Popen(
        ["openssl", "smime", "-sign", "-inkey", key, "-signer", cert, "-text"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
    )
    signed, error = p.communicate(text)
    if error != "":
        sys.stderr.write(error)
    return signed


# SSM builds the client with the host certificate and no token: the first call exchanges it
# (authx509 on the authn port); the data API is on its own port in the sim.
ams = ArgoMessagingService(endpoint="localhost", project=project, cert=cert, key=key, authn_port=int(authn_port))
token = ams.token
ams.endpoint = data_host

outq = QueueSimple(spool)
t_sign = t_publish = 0.0
sent = locked = 0
for msgid in outq:
    if not outq.lock(msgid):
        locked += 1
        continue
    text = outq.get(msgid)
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    t0 = time.perf_counter()
    to_send = sign(text)
    t1 = time.perf_counter()
    message = AmsMessage(data=to_send, attributes={"empaid": msgid}).dict()
    response = ams.publish(topic, message, retry=3)
    t2 = time.perf_counter()
    t_sign += t1 - t0
    t_publish += t2 - t1
    if response["messageIds"][0] is not None:
        sent += 1
    outq.remove(msgid)
outq.purge()
print(json.dumps({"sent": sent, "locked": locked, "sign_s": t_sign, "publish_s": t_publish, "token_set": bool(token)}))
