"""Generated code of the vk.provider.v1 contract (provider_pb2*, written by scripts/gen-sdk; do
not edit). Import it as `from vk_provider import pb, pb_grpc`."""
