using EdgeSlm.EdgeModule.Wyoming;
using Microsoft.Extensions.Logging.Abstractions;

namespace EdgeSlm.EdgeModule.Tests.Wyoming;

/// <summary><c>edgeslm health</c> for Wyoming alone: online when the port answers describe with info.</summary>
public sealed class WyomingHealthTests
{
    [Fact]
    public async Task A_serving_port_is_online_and_a_closed_one_is_not()
    {
        var settings = new WyomingSettings { Port = 0, Address = "127.0.0.1" };
        var server = new WyomingServer(settings, new WyomingIntentHandler(WyomingIntentHandlerTests.Classify, () => null,
            HomeAssistantIntents.BuiltIn, settings, NullLogger.Instance), NullLogger.Instance);
        server.Start();
        var probe = new WyomingSettings { Port = server.Port, Address = "0.0.0.0" }; // as the module's own settings say it
        Assert.Equal("online", await WyomingHealth.CheckAsync(probe, TimeSpan.FromSeconds(10)));
        await server.DisposeAsync();
        Assert.NotEqual("online", await WyomingHealth.CheckAsync(probe, TimeSpan.FromSeconds(10)));
    }
}
