using EdgeSlm.EdgeModule.Configuration;
using EdgeSlm.EdgeModule.Hosting;
using EdgeSlm.EdgeModule.Messaging;
using EdgeSlm.EdgeModule.Protocols;
using EdgeSlm.EdgeModule.Service;
using EdgeSlm.EdgeModule.Tests.Support;

namespace EdgeSlm.EdgeModule.Tests.Hosting;

/// <summary>Settings are read from file, environment and command line, and checked at start-up with the setting named.</summary>
public sealed class ModuleSettingsTests
{
    private static ModuleSettings Load(Dictionary<string, string?> commandLine, string? file = null) =>
        ModuleHost.LoadSettings(file, commandLine).Settings;

    private static string Problems(Dictionary<string, string?> commandLine) =>
        Assert.Throws<SettingsException>(() => Load(commandLine)).Message;

    [Fact]
    public void Defaults_are_the_embedded_broker_both_profiles_and_site_default()
    {
        ModuleSettings settings = Load([]);
        Assert.Equal("embedded", settings.Mqtt.Broker);
        Assert.Equal("default", settings.SiteId);
        Assert.Equal(ProtocolProfile.Hermes | ProtocolProfile.Native, settings.ParsedProfiles());
        Assert.Equal(8192, settings.MaxPayloadBytes);
        Assert.Equal("5", settings.Mqtt.ProtocolVersion);
    }

    [Fact]
    public void Each_bad_setting_is_named_in_the_message()
    {
        string message = Problems(new()
        {
            ["SiteId"] = "kitchen/+",
            ["Profiles"] = "hermes,snips",
            ["Threads"] = "0",
            ["Mqtt:Broker"] = "http://broker",
            ["Mqtt:ProtocolVersion"] = "4",
            ["Mqtt:CaFile"] = "/nonexistent/ca.pem",
            ["Telemetry:IntervalSeconds"] = "0",
            ["Threshold"] = "1.5",
        });
        foreach (string setting in new[] { "SiteId", "Profiles", "Threads", "Mqtt:Broker", "Mqtt:ProtocolVersion", "Mqtt:CaFile", "Telemetry:IntervalSeconds", "Threshold" })
        {
            Assert.True(message.Contains(setting + ":") || message.Contains(setting + " must"), $"{setting} is not named in: {message}");
        }
    }

    [Fact]
    public void A_value_of_the_wrong_type_names_the_key()
    {
        SettingsException e = Assert.Throws<SettingsException>(() => Load(new() { ["Threads"] = "many" }));
        Assert.Contains("Threads", e.Message);
    }

    [Theory]
    [InlineData("mqtt://broker.lan", "broker.lan", 1883, false)]
    [InlineData("mqtts://broker.lan", "broker.lan", 8883, true)]
    [InlineData("mqtt://10.0.0.2:1884", "10.0.0.2", 1884, false)]
    public void Broker_urls_give_host_port_and_tls(string url, string host, int port, bool tls)
    {
        BrokerAddress address = BrokerAddress.Parse(url);
        Assert.Equal((host, port, tls, false), (address.Host, address.Port, address.Tls, address.Embedded));
    }

    [Fact]
    public void Credentials_in_the_broker_url_are_refused()
    {
        Assert.Contains("Mqtt:Username", Assert.Throws<SettingsException>(() => BrokerAddress.Parse("mqtt://user:secret@broker")).Message);
    }

    [Fact]
    public void Json_file_then_environment_then_command_line_later_wins()
    {
        string file = Path.Combine(Path.GetTempPath(), $"edgeslm-settings-{Guid.NewGuid():N}.json");
        File.WriteAllText(file, """{"SiteId": "from-file", "Threads": 1, "Mqtt": {"Broker": "mqtt://file-broker:1883", "KeepAliveSeconds": 45}}""");
        string variable = ModuleHost.EnvironmentPrefix + "Mqtt__Broker";
        Environment.SetEnvironmentVariable(variable, "mqtt://env-broker:1883");
        try
        {
            ModuleSettings settings = Load(new() { ["SiteId"] = "from-command-line" }, file);
            Assert.Equal("from-command-line", settings.SiteId);
            Assert.Equal("mqtt://env-broker:1883", settings.Mqtt.Broker);
            Assert.Equal(45, settings.Mqtt.KeepAliveSeconds);
            Assert.Equal(1, settings.Threads);
        }
        finally
        {
            Environment.SetEnvironmentVariable(variable, null);
            File.Delete(file);
        }
    }

    [Fact]
    public void Run_with_a_bad_setting_exits_2_with_one_line_per_problem_and_no_stack_trace()
    {
        (int exit, string output) = ModuleProcess.RunToEnd(TimeSpan.FromSeconds(60), "run", "--site", "a/b", "--broker", "ftp://x");
        Assert.Equal(2, exit);
        Assert.Contains("edgeslm: SiteId:", output);
        Assert.Contains("edgeslm: Mqtt:Broker:", output);
        Assert.DoesNotContain("   at ", output);
    }

    [Fact]
    public void Run_with_a_corrupt_model_exits_1_with_one_line()
    {
        string model = Path.Combine(Path.GetTempPath(), $"edgeslm-corrupt-{Guid.NewGuid():N}.gguf");
        File.WriteAllBytes(model, [.. "GGUF"u8, 3, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]);
        try
        {
            (int exit, string output) = ModuleProcess.RunToEnd(TimeSpan.FromSeconds(60), "run", "--model", model, "--broker", "mqtt://127.0.0.1:1");
            Assert.Equal(1, exit);
            string[] lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            Assert.Single(lines, l => l.StartsWith("edgeslm: cannot start:", StringComparison.Ordinal));
            Assert.DoesNotContain("   at ", output);
        }
        finally
        {
            File.Delete(model);
        }
    }
}
