# fwht / srht variants (see shaders/include/fwht.h for the layout and math).
# thread: one invocation per row, register passes, no shared memory (CPU
#         devices without subgroup shuffles); blocks of 8 or 16 vec4s.
# group:  a workgroup per row(s) in shared memory (GPUs); col: the column pass
#         that completes group where a row does not fit in shared memory.
vkq_shader(fwht_thread fwht_thread.comp DEFINES LOG2M=3u)
vkq_shader(fwht_thread_m16 fwht_thread.comp DEFINES LOG2M=4u)
vkq_shader(fwht_group fwht_group.comp DEFINES LOG2M=3u)
vkq_shader(fwht_col fwht_col.comp)
# lanes: 2^LOG2L neighbouring lanes of a subgroup per row, the whole row in
#        registers, one pass (CPU devices with subgroup shuffles; rows of at
#        most 2^7 vec4s per lane, else thread).
vkq_shader(fwht_lanes fwht_lanes.comp)
