# Sign packing (signpack.comp): subgroupBallot and per-invocation variants;
# input/alpha precision, centering and vector loads are specialization
# constants. signpack_unpack.comp decodes bits + alpha (+ mean) back to floats.
vkq_shader(signpack_ballot signpack.comp DEFINES VARIANT_BALLOT)
vkq_shader(signpack_invocation signpack.comp DEFINES VARIANT_INVOCATION)
vkq_shader(signpack_unpack signpack_unpack.comp)
