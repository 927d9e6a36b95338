using EdgeSlm.EdgeModule.Configuration;

namespace EdgeSlm.EdgeModule.Messaging;

/// <summary>The <c>Mqtt</c> section: the broker, the session and how to reconnect.</summary>
public sealed class MqttSettings
{
    /// <summary><c>mqtt://host[:1883]</c>, <c>mqtts://host[:8883]</c>, or <c>embedded</c> (a broker in this process).</summary>
    public string Broker { get; set; } = "embedded";

    /// <summary>Port of the embedded broker (0: any free port).</summary>
    public int EmbeddedPort { get; set; } = 1883;

    /// <summary>5 (default) or 3.1.1.</summary>
    public string ProtocolVersion { get; set; } = "5";

    /// <summary>Empty: edgeslm-&lt;SiteId&gt;. Must be stable across restarts for the persistent session to resume.</summary>
    public string? ClientId { get; set; }

    public string? Username { get; set; }
    public string? Password { get; set; }

    /// <summary>PEM file of the CA that signed the broker's certificate (mqtts); empty: the system's trust store.</summary>
    public string? CaFile { get; set; }

    /// <summary>PEM client certificate and key for mutual TLS.</summary>
    public string? ClientCertificateFile { get; set; }
    public string? ClientKeyFile { get; set; }

    /// <summary>How long the broker keeps our session (subscriptions, queued QoS 1 messages) while we are away.</summary>
    public int SessionExpirySeconds { get; set; } = 7 * 24 * 3600;

    public int KeepAliveSeconds { get; set; } = 30;

    /// <summary>Shared-subscription group: instances with the same group split the transcript stream.</summary>
    public string? SharedGroup { get; set; }

    public int ReconnectMinMilliseconds { get; set; } = 500;
    public int ReconnectMaxMilliseconds { get; set; } = 30_000;

    public List<string> Validate()
    {
        var errors = new List<string>();
        try
        {
            BrokerAddress.Parse(Broker);
        }
        catch (SettingsException e)
        {
            errors.Add(e.Message);
        }
        if (ProtocolVersion is not ("5" or "5.0" or "3.1.1" or "311")) errors.Add($"Mqtt:ProtocolVersion: '{ProtocolVersion}' is not 5 or 3.1.1");
        if (EmbeddedPort is < 0 or > 65535) errors.Add($"Mqtt:EmbeddedPort: {EmbeddedPort} is not a port");
        if (!string.IsNullOrEmpty(CaFile) && !File.Exists(CaFile)) errors.Add($"Mqtt:CaFile: file {CaFile} does not exist");
        if (!string.IsNullOrEmpty(ClientCertificateFile) && !File.Exists(ClientCertificateFile)) errors.Add($"Mqtt:ClientCertificateFile: file {ClientCertificateFile} does not exist");
        if (!string.IsNullOrEmpty(ClientKeyFile) && !File.Exists(ClientKeyFile)) errors.Add($"Mqtt:ClientKeyFile: file {ClientKeyFile} does not exist");
        if (string.IsNullOrEmpty(ClientCertificateFile) != string.IsNullOrEmpty(ClientKeyFile)) errors.Add("Mqtt:ClientCertificateFile and Mqtt:ClientKeyFile go together");
        if (SessionExpirySeconds < 0) errors.Add($"Mqtt:SessionExpirySeconds: {SessionExpirySeconds} is negative");
        if (KeepAliveSeconds is < 0 or > 65535) errors.Add($"Mqtt:KeepAliveSeconds: {KeepAliveSeconds} is not between 0 and 65535");
        if (SharedGroup is { Length: > 0 } group && !TopicLevel.IsValid(group)) errors.Add($"Mqtt:SharedGroup: '{group}' is not a topic level");
        if (ClientId is { Length: > 0 } id && (id.Length > 128 || id.Any(char.IsControl))) errors.Add("Mqtt:ClientId: at most 128 characters, no control characters");
        if (ReconnectMinMilliseconds < 10 || ReconnectMaxMilliseconds < ReconnectMinMilliseconds)
        {
            errors.Add($"Mqtt:ReconnectMinMilliseconds ({ReconnectMinMilliseconds}) must be at least 10 and at most Mqtt:ReconnectMaxMilliseconds ({ReconnectMaxMilliseconds})");
        }
        return errors;
    }
}

/// <summary>Checks text that becomes one level of an MQTT topic: site ids, intent names, group names.</summary>
public static class TopicLevel
{
    public static bool IsValid(string? level) =>
        level is { Length: > 0 and <= 64 } && !level.StartsWith('$') && !level.Any(c => c is '/' or '+' or '#' || char.IsControl(c));
}

/// <summary>Where the broker is.</summary>
public sealed record BrokerAddress(bool Embedded, string Host, int Port, bool Tls)
{
    public static BrokerAddress Parse(string broker)
    {
        if (string.Equals(broker, "embedded", StringComparison.OrdinalIgnoreCase))
        {
            return new BrokerAddress(true, "127.0.0.1", 0, false);
        }
        if (!Uri.TryCreate(broker, UriKind.Absolute, out Uri? uri) || uri.Scheme is not ("mqtt" or "mqtts" or "tcp" or "ssl") || string.IsNullOrEmpty(uri.Host))
        {
            throw new SettingsException($"Mqtt:Broker: '{broker}' is not mqtt://HOST[:PORT], mqtts://HOST[:PORT] or embedded");
        }
        if (!string.IsNullOrEmpty(uri.UserInfo))
        {
            throw new SettingsException("Mqtt:Broker: put credentials in Mqtt:Username and Mqtt:Password, not in the URL");
        }
        bool tls = uri.Scheme is "mqtts" or "ssl";
        return new BrokerAddress(false, uri.Host, uri.IsDefaultPort || uri.Port <= 0 ? (tls ? 8883 : 1883) : uri.Port, tls);
    }
}
