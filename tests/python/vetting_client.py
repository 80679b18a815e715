"""A vetting office's own system in Python (grpcio, no .proto files): runs a cross-check
through the descriptors it gets by server reflection and reads the result stream.

Prints one line per streamed result (index, verdict, finding codes) and the summary's
report name, then OK. Exits non-zero with a message on the first thing that does not
work.

usage: vetting_client.py HOST:PORT TOKEN NAME:ID_NUMBER...
"""

import sys

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def fail(message):
    print(f"FAIL: {message}")
    sys.exit(1)


def main():
    target, token = sys.argv[1:3]
    people = [arg.split(":", 1) for arg in sys.argv[3:]]
    channel = grpc.insecure_channel(target)
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    service = pool.FindServiceByName("credithub.v1.VettingService")
    method = service.FindMethodByName("CrossCheck")
    if not method.server_streaming:
        fail("CrossCheck is not server streaming")
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    verdicts = pool.FindEnumTypeByName("credithub.v1.Verdict")
    purpose = pool.FindEnumTypeByName("credithub.v1.VettingPurpose").values_by_name[
        "VETTING_PURPOSE_VILLAGE_COMMITTEE_CANDIDATE"
    ].number

    request = request_class(purpose=purpose, case_reference="2026-组织-017")
    for name, id_number in people:
        candidate = request.candidates.add()
        candidate.name = name
        candidate.id_number = id_number

    rpc = channel.unary_stream(
        f"/{service.full_name}/CrossCheck",
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    results = 0
    summary = None
    for message in rpc(request, metadata=[("authorization", f"Bearer {token}")]):
        event = message.WhichOneof("event")
        if event == "result":
            r = message.result
            if r.index != results:
                fail(f"result {r.index} arrived as number {results}")
            verdict = verdicts.values_by_number[r.verdict].name
            codes = ",".join(f.code for f in r.findings) or "-"
            print(f"result {r.index} {verdict} {codes} {r.masked_id_number}")
            results += 1
        elif event == "summary":
            summary = message.summary
        else:
            fail("a stream message carried neither a result nor a summary")
    if summary is None:
        fail("the stream ended without a summary")
    if results != len(people):
        fail(f"{results} results for {len(people)} candidates")
    print("summary:", summary.report, summary.policy_version)
    print("OK")


if __name__ == "__main__":
    main()
