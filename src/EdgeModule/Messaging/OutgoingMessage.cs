namespace EdgeSlm.EdgeModule.Messaging;

/// <summary>A message published by the module.</summary>
public sealed record OutgoingMessage(string Topic, byte[] Payload, bool Retain = false, byte[]? CorrelationData = null, string? ContentType = "application/json");
