// Zero-padding row copy ahead of a rotation of a padded width:
//   Y[t][j] = j < DIN ? X[first + t*DIN + j] : 0,  Y (rows, DOUT).
// One invocation per output element; x: columns, y: rows. Layouts in rotate.h.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "rotate.h"

layout(local_size_x_id = 0) in;
layout(push_constant) uniform PC { RotatePadParams p; };

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };

void main() {
  const uint j = gl_GlobalInvocationID.x, t = gl_GlobalInvocationID.y;
  if (j >= p.dout || t >= p.rows) return;
  y[t * p.dout + j] = j < p.din ? x[p.first + t * p.din + j] : 0.0;
}
