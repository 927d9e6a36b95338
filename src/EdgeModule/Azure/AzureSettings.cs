using EdgeSlm.EdgeModule.Configuration;
using EdgeSlm.EdgeModule.Messaging;

namespace EdgeSlm.EdgeModule.Azure;

/// <summary>
/// The <c>Azure</c> section: connect to Azure IoT Hub, or to edgeHub inside IoT Edge, instead of <c>Mqtt:Broker</c>.
/// Either a device or module connection string, or the <c>IOTEDGE_*</c> environment the Edge runtime gives a module
/// (used by itself when <c>IOTEDGE_WORKLOADURI</c> is set). Keys never appear in messages or logs.
/// </summary>
public sealed class AzureSettings
{
    /// <summary><c>HostName=..;DeviceId=..;ModuleId=..;SharedAccessKey=..[;GatewayHostName=..]</c>.</summary>
    public string? ConnectionString { get; set; }

    /// <summary>Sign tokens through the IoT Edge workload API; empty: yes when <c>IOTEDGE_WORKLOADURI</c> is set.</summary>
    public bool? UseEdgeEnvironment { get; set; }

    /// <summary>The module input transcripts arrive on (<c>devices/{d}/modules/{m}/inputs/{InputName}/...</c>).</summary>
    public string InputName { get; set; } = "transcripts";

    /// <summary>The module output results leave on (<c>$.on={OutputName}</c>); route it to <c>$upstream</c> or another module.</summary>
    public string OutputName { get; set; } = "intents";

    /// <summary>The module output for messages that could not be classified.</summary>
    public string ErrorOutputName { get; set; } = "errors";

    /// <summary>The module output for telemetry.</summary>
    public string TelemetryOutputName { get; set; } = "telemetry";

    /// <summary>Lifetime of each SAS token; the module reconnects with a fresh one at 80% of it.</summary>
    public int TokenLifetimeMinutes { get; set; } = 60;

    /// <summary>PEM file of the CA to trust for the hub or gateway; empty: the trust bundle (Edge) or the system's store.</summary>
    public string? CaFile { get; set; }

    /// <summary>MQTT port of the hub or gateway.</summary>
    public int Port { get; set; } = 8883;

    /// <summary>TLS to the hub or gateway. IoT Hub and edgeHub require it; off only for a local stand-in (tests).</summary>
    public bool Tls { get; set; } = true;

    /// <summary>Environment variables read for the Edge environment; a test replaces it.</summary>
    internal Func<string, string?> Environment { get; set; } = System.Environment.GetEnvironmentVariable;

    /// <summary>True when the module talks to IoT Hub or edgeHub rather than <c>Mqtt:Broker</c>.</summary>
    public bool IsConfigured => !string.IsNullOrWhiteSpace(ConnectionString) || EdgeEnvironmentInUse;

    internal bool EdgeEnvironmentInUse => UseEdgeEnvironment ?? (string.IsNullOrWhiteSpace(ConnectionString) && !string.IsNullOrEmpty(Environment(EdgeEnvironment.WorkloadUriVariable)));

    public List<string> Validate()
    {
        var errors = new List<string>();
        if (!IsConfigured)
        {
            return errors;
        }
        if (!string.IsNullOrWhiteSpace(ConnectionString) && UseEdgeEnvironment == true)
        {
            errors.Add("Azure:ConnectionString and Azure:UseEdgeEnvironment=true exclude each other: use one");
        }
        else if (!string.IsNullOrWhiteSpace(ConnectionString))
        {
            try
            {
                IotHubConnectionString.Parse(ConnectionString);
            }
            catch (SettingsException e)
            {
                errors.Add(e.Message);
            }
        }
        else
        {
            try
            {
                EdgeEnvironment.Read(Environment);
            }
            catch (SettingsException e)
            {
                errors.Add(e.Message);
            }
        }
        foreach ((string name, string value) in new[] { ("InputName", InputName), ("OutputName", OutputName), ("ErrorOutputName", ErrorOutputName), ("TelemetryOutputName", TelemetryOutputName) })
        {
            if (!TopicLevel.IsValid(value) || value.Any(c => c is '&' or '=' or '?' or '%'))
            {
                errors.Add($"Azure:{name}: '{value}' is not a module input or output name (1 to 64 characters, no '/', '+', '#', '&', '=', '?', '%')");
            }
        }
        if (TokenLifetimeMinutes is < 5 or > 7 * 24 * 60) errors.Add($"Azure:TokenLifetimeMinutes: {TokenLifetimeMinutes} is not between 5 and 10080");
        if (Port is < 1 or > 65535) errors.Add($"Azure:Port: {Port} is not a port");
        if (!string.IsNullOrEmpty(CaFile) && !File.Exists(CaFile)) errors.Add($"Azure:CaFile: file {CaFile} does not exist");
        return errors;
    }
}

/// <summary>
/// A device or module connection string. Only identity keys are accepted (a shared access policy,
/// <c>SharedAccessKeyName</c>, cannot connect as a device). Errors name the field, never its value.
/// </summary>
public sealed record IotHubConnectionString(string HostName, string DeviceId, string? ModuleId, byte[] SharedAccessKey, string? GatewayHostName)
{
    public static IotHubConnectionString Parse(string connectionString)
    {
        var fields = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (string part in connectionString.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int equals = part.IndexOf('=');
            if (equals <= 0)
            {
                throw new SettingsException("Azure:ConnectionString: every field is Name=Value, separated by ';'");
            }
            // Base64 keys end in '=': split at the first one only.
            fields[part[..equals].Trim()] = part[(equals + 1)..].Trim();
        }
        string Required(string name) =>
            fields.TryGetValue(name, out string? value) && value.Length > 0 ? value : throw new SettingsException($"Azure:ConnectionString: {name} is missing");
        if (fields.ContainsKey("SharedAccessKeyName"))
        {
            throw new SettingsException("Azure:ConnectionString: SharedAccessKeyName is a hub policy; use the device's or module's own connection string");
        }
        if (fields.ContainsKey("x509") || fields.ContainsKey("SharedAccessSignature"))
        {
            throw new SettingsException("Azure:ConnectionString: only SharedAccessKey authentication is supported");
        }
        string host = Required("HostName");
        string device = Required("DeviceId");
        byte[] key;
        try
        {
            key = Convert.FromBase64String(Required("SharedAccessKey"));
        }
        catch (FormatException)
        {
            throw new SettingsException("Azure:ConnectionString: SharedAccessKey is not base64");
        }
        if (Uri.CheckHostName(host) == UriHostNameType.Unknown) throw new SettingsException("Azure:ConnectionString: HostName is not a host name");
        fields.TryGetValue("ModuleId", out string? module);
        fields.TryGetValue("GatewayHostName", out string? gateway);
        if (gateway is { Length: > 0 } && Uri.CheckHostName(gateway) == UriHostNameType.Unknown) throw new SettingsException("Azure:ConnectionString: GatewayHostName is not a host name");
        return new IotHubConnectionString(host, device, string.IsNullOrEmpty(module) ? null : module, key, string.IsNullOrEmpty(gateway) ? null : gateway);
    }

    /// <summary>Without the key: records print their fields, and this one must never reach a log.</summary>
    public override string ToString() => $"HostName={HostName};DeviceId={DeviceId};ModuleId={ModuleId};GatewayHostName={GatewayHostName}";
}

/// <summary>What the IoT Edge runtime tells a module about itself, from the <c>IOTEDGE_*</c> environment.</summary>
public sealed record EdgeEnvironment(string IotHubHostName, string GatewayHostName, string DeviceId, string ModuleId, string GenerationId,
    string WorkloadSocket, string ApiVersion)
{
    public const string WorkloadUriVariable = "IOTEDGE_WORKLOADURI";

    /// <summary>The version the edgelet client uses when the runtime does not say.</summary>
    public const string DefaultApiVersion = "2019-01-30";

    public static EdgeEnvironment Read(Func<string, string?> environment)
    {
        string Required(string name) =>
            environment(name) is { Length: > 0 } value ? value : throw new SettingsException($"Azure:UseEdgeEnvironment: {name} is not set");
        string scheme = environment("IOTEDGE_AUTHSCHEME") ?? "sasToken";
        if (!string.Equals(scheme, "sasToken", StringComparison.OrdinalIgnoreCase))
        {
            throw new SettingsException($"Azure:UseEdgeEnvironment: IOTEDGE_AUTHSCHEME '{scheme}' is not supported (sasToken)");
        }
        string workload = Required(WorkloadUriVariable);
        if (!Uri.TryCreate(workload, UriKind.Absolute, out Uri? uri) || uri.Scheme != "unix" || string.IsNullOrEmpty(uri.AbsolutePath))
        {
            throw new SettingsException($"Azure:UseEdgeEnvironment: {WorkloadUriVariable} '{workload}' is not unix:///path/to/workload.sock");
        }
        return new EdgeEnvironment(Required("IOTEDGE_IOTHUBHOSTNAME"), Required("IOTEDGE_GATEWAYHOSTNAME"), Required("IOTEDGE_DEVICEID"),
            Required("IOTEDGE_MODULEID"), Required("IOTEDGE_MODULEGENERATIONID"), Uri.UnescapeDataString(uri.AbsolutePath),
            environment("IOTEDGE_APIVERSION") is { Length: > 0 } version ? version : DefaultApiVersion);
    }
}
