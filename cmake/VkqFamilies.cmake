# Kernel families contribute globbed files (shaders/<family>.cmake,
# runtime/src/{kernels,reference}/<family>*.cpp, tests/test_<family>*.cpp,
# tools/bench/cases_<family>*.cpp). VKQ_ONLY_FAMILIES (a developer option,
# empty by default) keeps only the named families' files, so work on one
# family builds while another's is half-written.
set(VKQ_ONLY_FAMILIES "" CACHE STRING "Developer option: build only these kernel families (;-list)")

# vkq_filter_families(<list-var> <prefix>): drops files whose name starts with
# <prefix> followed by a family not named in VKQ_ONLY_FAMILIES.
function(vkq_filter_families var prefix)
  if(NOT VKQ_ONLY_FAMILIES)
    return()
  endif()
  # The host library's rotations use fwht (srht_sign) and rotate: always kept.
  set(families ${VKQ_ONLY_FAMILIES} fwht rotate)
  set(kept "")
  foreach(f IN LISTS ${var})
    get_filename_component(name ${f} NAME)
    set(keep FALSE)
    foreach(fam IN LISTS families)
      string(FIND "${name}" "${prefix}${fam}" pos)
      if(pos EQUAL 0)
        set(keep TRUE)
      endif()
    endforeach()
    if(keep)
      list(APPEND kept ${f})
    endif()
  endforeach()
  set(${var} ${kept} PARENT_SCOPE)
endfunction()
