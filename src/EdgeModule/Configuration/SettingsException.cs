namespace EdgeSlm.EdgeModule.Configuration;

/// <summary>A setting that cannot be used; the message names it. Every settings section throws it, the host reports it.</summary>
public sealed class SettingsException(string message) : Exception(message);
