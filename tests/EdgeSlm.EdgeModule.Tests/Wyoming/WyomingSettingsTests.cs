using EdgeSlm.EdgeModule.Configuration;
using EdgeSlm.EdgeModule.Hosting;
using EdgeSlm.EdgeModule.Protocols;
using EdgeSlm.EdgeModule.Service;

namespace EdgeSlm.EdgeModule.Tests.Wyoming;

/// <summary>The Wyoming section is bound like every setting and checked at start-up, each problem naming its setting.</summary>
public sealed class WyomingSettingsTests
{
    [Fact]
    public void Defaults_listen_on_10700_and_the_profile_parses()
    {
        ModuleSettings settings = ModuleHost.LoadSettings(null, new Dictionary<string, string?> { ["Profiles"] = "wyoming" }).Settings;
        Assert.Equal(ProtocolProfile.Wyoming, settings.ParsedProfiles());
        Assert.Equal(10700, settings.Wyoming.Port);
        Assert.True(settings.Wyoming.HomeAssistantIntentsOnly);
        Assert.Equal(["en"], settings.Wyoming.ParsedLanguages());
    }

    [Fact]
    public void Settings_bind_from_the_command_line()
    {
        ModuleSettings settings = ModuleHost.LoadSettings(null, new Dictionary<string, string?>
        {
            ["Profiles"] = "hermes,wyoming",
            ["Wyoming:Port"] = "0",
            ["Wyoming:MaxConnections"] = "3",
            ["Wyoming:HomeAssistantIntentsOnly"] = "false",
            ["Wyoming:Languages"] = "en, de",
        }).Settings;
        Assert.Equal(ProtocolProfile.Hermes | ProtocolProfile.Wyoming, settings.ParsedProfiles());
        Assert.Equal(0, settings.Wyoming.Port);
        Assert.Equal(3, settings.Wyoming.MaxConnections);
        Assert.False(settings.Wyoming.HomeAssistantIntentsOnly);
        Assert.Equal(["en", "de"], settings.Wyoming.ParsedLanguages());
    }

    [Fact]
    public void Each_bad_setting_is_named()
    {
        string message = Assert.Throws<SettingsException>(() => ModuleHost.LoadSettings(null, new Dictionary<string, string?>
        {
            ["Wyoming:Port"] = "70000",
            ["Wyoming:Address"] = "my-host",
            ["Wyoming:MaxConnections"] = "0",
            ["Wyoming:MaxHeaderBytes"] = "10",
            ["Wyoming:MaxDataBytes"] = "-1",
            ["Wyoming:MaxPayloadBytes"] = "-1",
            ["Wyoming:IdleTimeoutSeconds"] = "0",
            ["Wyoming:NotRecognizedText"] = " ",
            ["Wyoming:Languages"] = "en;de",
        })).Message;
        foreach (string setting in new[] { "Port", "Address", "MaxConnections", "MaxHeaderBytes", "MaxDataBytes", "MaxPayloadBytes", "IdleTimeoutSeconds", "NotRecognizedText", "Languages" })
        {
            Assert.Contains($"Wyoming:{setting}:", message);
        }
    }
}
