-- Argo CD health check for videojob.dev/VideoJob.
-- Healthy when the job Succeeded, Degraded when it Failed, Suspended when Cancelled, Progressing otherwise
-- (Pending in the queue, or Running). The message carries the queue position or progress.
local hs = {status = "Progressing", message = "Waiting for the operator"}
if obj.status == nil or obj.status.phase == nil then
  return hs
end
local phase = obj.status.phase
if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = "Succeeded"
elseif phase == "Failed" then
  hs.status = "Degraded"
  hs.message = obj.status.message or "Failed"
elseif phase == "Cancelled" then
  hs.status = "Suspended"
  hs.message = "Cancelled"
elseif phase == "Running" then
  hs.message = string.format("Running: %d%%", math.floor(obj.status.progress or 0))
elseif phase == "Pending" then
  if obj.status.queuePosition ~= nil then
    hs.message = string.format("Queued at position %d", obj.status.queuePosition)
  else
    hs.message = "Pending"
  end
end
return hs
