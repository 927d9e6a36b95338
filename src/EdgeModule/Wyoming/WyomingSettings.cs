using System.Net;

namespace EdgeSlm.EdgeModule.Wyoming;

/// <summary>
/// The <c>Wyoming</c> section of the settings: where the intent service listens (with the <c>wyoming</c> profile)
/// and the limits each connection is held to. <see cref="Validate"/> names the setting of every problem.
/// </summary>
public sealed class WyomingSettings
{
    /// <summary>Home Assistant's Wyoming integration asks for host and port; 10700 is the port its intent services use by convention.</summary>
    public int Port { get; set; } = 10700;

    /// <summary>Address to listen on: 0.0.0.0 (all IPv4), :: (all, IPv6 and IPv4) or one interface's address.</summary>
    public string Address { get; set; } = "0.0.0.0";

    /// <summary>Connections served at once; one more is answered with an error event and closed. Home Assistant opens one per request.</summary>
    public int MaxConnections { get; set; } = 32;

    /// <summary>Longest header line; Home Assistant's are under 200 bytes (its data follows the header).</summary>
    public int MaxHeaderBytes { get; set; } = 8 * 1024;

    /// <summary>Largest <c>data_length</c>: the JSON data of one event (a transcript and its context).</summary>
    public int MaxDataBytes { get; set; } = 64 * 1024;

    /// <summary>Largest <c>payload_length</c>. An intent service needs no payload; a small one is read and ignored.</summary>
    public int MaxPayloadBytes { get; set; } = 64 * 1024;

    /// <summary>A connection that sends no complete event for this long is told so in an error event and closed.</summary>
    public int IdleTimeoutSeconds { get; set; } = 30;

    /// <summary>
    /// Answer only with intents and slots Home Assistant can execute (its built-in intents, see
    /// HomeAssistantIntents); anything else is <c>not-recognized</c>. False: answer with every intent the engine
    /// knows (for a handler of your own that reads Wyoming).
    /// </summary>
    public bool HomeAssistantIntentsOnly { get; set; } = true;

    /// <summary>What Home Assistant says when the service did not recognize a sentence (the <c>not-recognized</c> event's text).</summary>
    public string NotRecognizedText { get; set; } = "Sorry, I couldn't understand that";

    /// <summary>Languages the intents are in (the info's model languages; Home Assistant offers the agent for these).</summary>
    public string Languages { get; set; } = "en";

    public WyomingLimits Limits => new(MaxHeaderBytes, MaxDataBytes, MaxPayloadBytes);

    public IPAddress ParsedAddress() =>
        IPAddress.TryParse(Address, out IPAddress? address) ? address : throw new FormatException($"Wyoming:Address: '{Address}' is not an IP address");

    public IReadOnlyList<string> ParsedLanguages() =>
        Languages.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>Every problem, each naming its setting; empty when the settings can be used.</summary>
    public List<string> Validate()
    {
        var errors = new List<string>();
        if (Port is < 0 or > 65535) errors.Add($"Wyoming:Port: {Port} is not a port (0 to 65535; 0 picks a free one)");
        if (!IPAddress.TryParse(Address, out _)) errors.Add($"Wyoming:Address: '{Address}' is not an IP address (0.0.0.0, ::, or an interface's address)");
        if (MaxConnections is < 1 or > 10_000) errors.Add($"Wyoming:MaxConnections: {MaxConnections} is not between 1 and 10000");
        if (MaxHeaderBytes is < 256 or > 1024 * 1024) errors.Add($"Wyoming:MaxHeaderBytes: {MaxHeaderBytes} is not between 256 and 1048576");
        if (MaxDataBytes is < 256 or > 16 * 1024 * 1024) errors.Add($"Wyoming:MaxDataBytes: {MaxDataBytes} is not between 256 and 16777216");
        if (MaxPayloadBytes is < 0 or > 16 * 1024 * 1024) errors.Add($"Wyoming:MaxPayloadBytes: {MaxPayloadBytes} is not between 0 and 16777216");
        if (IdleTimeoutSeconds is < 1 or > 3600) errors.Add($"Wyoming:IdleTimeoutSeconds: {IdleTimeoutSeconds} is not between 1 and 3600");
        if (string.IsNullOrWhiteSpace(NotRecognizedText) || NotRecognizedText.Length > 1000) errors.Add("Wyoming:NotRecognizedText: 1 to 1000 characters");
        if (ParsedLanguages().Count == 0 || ParsedLanguages().Any(l => l.Length > 35 || !l.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_')))
        {
            errors.Add($"Wyoming:Languages: '{Languages}' is not a comma-separated list of language codes (en, de, pt-BR)");
        }
        return errors;
    }
}
