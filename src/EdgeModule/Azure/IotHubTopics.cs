namespace EdgeSlm.EdgeModule.Azure;

/// <summary>
/// The MQTT names of one module identity on IoT Hub or edgeHub (the same on both): client id, user name, the
/// input and output topics, twin and direct-method topics.
/// </summary>
public sealed class IotHubTopics
{
    /// <summary>The API version in the user name.</summary>
    public const string ApiVersion = "2021-04-12";

    public const string TwinResponseFilter = "$iothub/twin/res/#";
    public const string TwinResponsePrefix = "$iothub/twin/res/";
    public const string DesiredPatchFilter = "$iothub/twin/PATCH/properties/desired/#";
    public const string DesiredPatchPrefix = "$iothub/twin/PATCH/properties/desired/";
    public const string MethodFilter = "$iothub/methods/POST/#";
    public const string MethodPrefix = "$iothub/methods/POST/";

    public IotHubTopics(string hubHostName, string deviceId, string? moduleId)
    {
        HubHostName = hubHostName;
        DeviceId = deviceId;
        ModuleId = moduleId;
        string identity = moduleId is null ? $"devices/{deviceId}" : $"devices/{deviceId}/modules/{moduleId}";
        ClientId = moduleId is null ? deviceId : $"{deviceId}/{moduleId}";
        UserName = moduleId is null ? $"{hubHostName}/{deviceId}/?api-version={ApiVersion}" : $"{hubHostName}/{deviceId}/{moduleId}/?api-version={ApiVersion}";
        ResourceUri = SasToken.ResourceUri(hubHostName, deviceId, moduleId);
        InputFilter = $"{identity}/inputs/#";
        InputPrefix = $"{identity}/inputs/";
        EventsTopic = $"{identity}/messages/events/";
        // A device has no inputs; it receives cloud-to-device messages instead.
        if (moduleId is null)
        {
            InputFilter = $"devices/{deviceId}/messages/devicebound/#";
            InputPrefix = $"devices/{deviceId}/messages/devicebound/";
        }
    }

    public string HubHostName { get; }
    public string DeviceId { get; }
    public string? ModuleId { get; }

    /// <summary><c>{deviceId}/{moduleId}</c>.</summary>
    public string ClientId { get; }

    /// <summary><c>{hub}/{deviceId}/{moduleId}/?api-version=2021-04-12</c>.</summary>
    public string UserName { get; }

    /// <summary><c>{hub}/devices/{deviceId}/modules/{moduleId}</c>: what a SAS token grants access to.</summary>
    public string ResourceUri { get; }

    /// <summary><c>devices/{d}/modules/{m}/inputs/#</c>.</summary>
    public string InputFilter { get; }

    public string InputPrefix { get; }

    /// <summary><c>devices/{d}/modules/{m}/messages/events/</c>.</summary>
    public string EventsTopic { get; }

    /// <summary>
    /// A module output with JSON content: <c>devices/{d}/modules/{m}/messages/events/%24.on={output}&amp;%24.ct=application%2Fjson&amp;%24.ce=utf-8</c>.
    /// For a device, which has no outputs, <c>$.on</c> becomes an application property.
    /// </summary>
    public string OutputTopic(string output) =>
        EventsTopic + (ModuleId is null ? "output=" : "%24.on=") + SasToken.UrlEncode(output) + "&%24.ct=application%2Fjson&%24.ce=utf-8";

    /// <summary>The input name of a topic under <see cref="InputPrefix"/> (<c>.../inputs/{name}/{properties}</c>), or null.</summary>
    public string? InputName(string topic)
    {
        if (!topic.StartsWith(InputPrefix, StringComparison.Ordinal))
        {
            return null;
        }
        if (ModuleId is null)
        {
            return "";
        }
        string rest = topic[InputPrefix.Length..];
        int slash = rest.IndexOf('/');
        return slash < 0 ? rest : rest[..slash];
    }

    public static string TwinGet(string rid) => $"$iothub/twin/GET/?$rid={rid}";
    public static string ReportedPatch(string rid) => $"$iothub/twin/PATCH/properties/reported/?$rid={rid}";
    public static string MethodResponse(int status, string rid) => $"$iothub/methods/res/{status}/?$rid={rid}";

    /// <summary>A value of the query string that ends a <c>$iothub</c> topic (<c>...?$rid=1&amp;$version=3</c>), or null.</summary>
    public static string? QueryValue(string topic, string name)
    {
        int question = topic.IndexOf('?');
        if (question < 0)
        {
            return null;
        }
        foreach (string pair in topic[(question + 1)..].Split('&'))
        {
            int equals = pair.IndexOf('=');
            if (equals > 0 && pair.AsSpan(0, equals).SequenceEqual(name))
            {
                return Uri.UnescapeDataString(pair[(equals + 1)..]);
            }
        }
        return null;
    }

    /// <summary>The status of <c>$iothub/twin/res/{status}/?$rid=...</c>.</summary>
    public static int? TwinResponseStatus(string topic)
    {
        if (!topic.StartsWith(TwinResponsePrefix, StringComparison.Ordinal))
        {
            return null;
        }
        string rest = topic[TwinResponsePrefix.Length..];
        int slash = rest.IndexOf('/');
        return int.TryParse(slash < 0 ? rest : rest[..slash], out int status) ? status : null;
    }

    /// <summary>The method name of <c>$iothub/methods/POST/{name}/?$rid=...</c>.</summary>
    public static string? MethodName(string topic)
    {
        if (!topic.StartsWith(MethodPrefix, StringComparison.Ordinal))
        {
            return null;
        }
        string rest = topic[MethodPrefix.Length..];
        int slash = rest.IndexOf('/');
        return slash < 0 ? rest : rest[..slash];
    }
}
