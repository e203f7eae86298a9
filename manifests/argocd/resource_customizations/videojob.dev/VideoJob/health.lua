-- Argo CD health check for videojob.dev/VideoJob, in Argo CD's resource_customizations layout (health_test.yaml
-- and testdata/ beside it; tests/unit/test_argocd_health.py runs them as argo-cd's own tests do).
--   Progressing: no status yet; a status written for an older generation of the spec; Pending (queue position
--                and the operator's message); Running (progress); being deleted (artifacts removed first).
--   Healthy:     Succeeded; Cancelled (only `spec.cancel: true` cancels, so the VideoJob is as its spec asks).
--   Degraded:    Failed, with the reason and message of the status.
local hs = {}
local meta = obj.metadata or {}
local status = obj.status

if meta.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Being deleted"
  for _, finalizer in ipairs(meta.finalizers or {}) do
    if finalizer == "videojob.dev/artifacts" then
      hs.message = "Being deleted: the operator deletes the artifacts first"
    end
  end
  return hs
end

if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator"
  return hs
end

if meta.generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < meta.generation then
  hs.status = "Progressing"
  hs.message = string.format("Waiting for the operator to observe generation %d (the status is of generation %d)",
    math.floor(meta.generation), math.floor(status.observedGeneration))
  return hs
end

local phase = status.phase
local message = status.message
if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = message or "Succeeded"
elseif phase == "Cancelled" then
  hs.status = "Healthy"
  hs.message = "Cancelled (spec.cancel)"
elseif phase == "Failed" then
  hs.status = "Degraded"
  if status.reason ~= nil and message ~= nil then
    hs.message = status.reason .. ": " .. message
  else
    hs.message = message or status.reason or "Failed"
  end
elseif phase == "Running" then
  hs.status = "Progressing"
  hs.message = string.format("Running: %d%%", math.floor(status.progress or 0))
elseif phase == "Pending" then
  hs.status = "Progressing"
  if status.queuePosition ~= nil then
    hs.message = string.format("Queued at position %d", math.floor(status.queuePosition))
    if message ~= nil and status.reason ~= "Queued" then
      hs.message = hs.message .. ": " .. message
    end
  else
    hs.message = message or "Pending"
  end
else
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. tostring(phase)
end
return hs
